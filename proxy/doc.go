// Package proxy is frontdoor's PHP front door: every request that is not /app or /apps is either
// a static file under Laravel's public/ or goes to the app's front controller through an
// upstream, the way Nginx's Laravel server block (try_files $uri $uri/ /index.php?$query_string)
// does it.
//
// Split as Caddy splits it: Handler owns the policy (static or PHP, limits, errors, request ids,
// access log); an upstream only moves one request. Upstreams are php-fpm over FastCGI (our own
// client: fastcgi.go is the wire format, fastcgi_params.go the CGI variables,
// fastcgi_client.go one exchange, fastcgi_pool.go the kept connections) or an HTTP server
// (upstream.go, with tunnel.go for WebSocket upgrades). Request bodies are read in full before
// an upstream is involved (body.go), responses stream; host.go checks the Host against the
// configured names; docroot.go follows deploys that swap a release symlink, and symlinks into
// storage/app/public. compress.go negotiates br, zstd and gzip; client.go finds the visitor's
// address behind trusted balancers; sendfile.go answers X-Sendfile and X-Accel-Redirect from
// disk.
package proxy
