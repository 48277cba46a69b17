package proxy

import "net"

// alive reports an idle connection as open: Windows has no non-blocking MSG_PEEK through the
// runtime's poller, so a kept connection php-fpm closed is found only when it is used, as one
// that skipped the check for being used within the last second is (see the pool's get). Windows
// is a development platform.
func alive(net.Conn) bool { return true }
