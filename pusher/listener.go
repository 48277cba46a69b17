package pusher

import (
	"net"

	"github.com/frontdoorhq/frontdoor/pusher/internal/ws"
)

// ListenerForTLS wraps the TCP listener that tls.NewListener then wraps, so WebSockets over TLS
// are read by the epoll driver like plain ones: an idle wss:// socket holds no goroutine. Other
// connections through it behave as plain TCP.
func ListenerForTLS(ln net.Listener) net.Listener { return ws.TLSBaseListener{Listener: ln} }
