// Package bench is frontdoor's load generator: it measures any Pusher-protocol server (frontdoor,
// Laravel Reverb, Soketi) and any HTTP front door (frontdoor's proxy, Nginx) from the outside.
//
// It talks to the server under test only over the network — WebSocket protocol v7 at
// /app/{key} and the signed HTTP API at /apps/{id}/... — and never imports package pusher, so
// the same code, with the same costs, measures every server. Server resource use comes from
// /proc/<pid> (RSS and CPU time), and the load generator reports its own CPU time beside the
// server's so a reader can judge a run where both share the same cores.
//
// Scenarios (connections, fanout, publish, presence, churn, proxy) are bounded in time and count
// and stop by themselves. Each returns a Result; a Report gathers Results with the machine's
// conditions and renders as a text table, JSON, or a self-contained HTML page with SVG charts.
// Main is the `frontdoor bench` command line.
package bench
