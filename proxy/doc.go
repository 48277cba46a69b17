// Package proxy is frontdoor's PHP front door: every request that is not /app or /apps is either
// a static file under Laravel's public/ or goes to the app's front controller through an
// upstream, the way Nginx's Laravel server block (try_files $uri $uri/ /index.php?$query_string)
// does it.
//
// Split as Caddy splits it: Handler owns the policy (static or PHP, limits, errors, request ids,
// access log); an upstream only moves one request.
package proxy
