package doctor

import (
	"fmt"
	"strings"
)

// broadcaster is the connection Laravel publishes with, as doctor determined it.
type broadcaster struct {
	name      string // "reverb", "pusher", "log", "null", ...
	key       string // the variable it came from: BROADCAST_CONNECTION or BROADCAST_DRIVER
	defaulted bool   // key is unset and name is the framework default
}

func (b broadcaster) publishes() bool { return b.name == "reverb" || b.name == "pusher" }

// checkBroadcaster: laravel-config.md §3 and §5 #1. Laravel ≤10 reads BROADCAST_DRIVER, ≥11
// BROADCAST_CONNECTION; the wrong one is silently ignored and events go to the null or log
// broadcaster. The truth is the app's config/broadcasting.php when it has one (an app upgraded
// to 11 may keep its old file), else the framework version in composer.lock.
func (p *project) checkBroadcaster() broadcaster {
	const conn, drv = "BROADCAST_CONNECTION", "BROADCAST_DRIVER"
	read, why := "", ""
	if keys := p.envKeysRead("config/broadcasting.php"); keys != nil && keys[conn] != keys[drv] {
		read = drv
		if keys[conn] {
			read = conn
		}
		why = fmt.Sprintf("config/broadcasting.php reads env('%s')", read)
	} else if !p.exists("config/broadcasting.php") {
		if v := p.frameworkVersion(); v != "" {
			if m := majorVersion(v); m >= 11 {
				read, why = conn, fmt.Sprintf("Laravel %s (composer.lock) reads BROADCAST_CONNECTION", v)
			} else if m > 0 {
				read, why = drv, fmt.Sprintf("Laravel %s (composer.lock) reads BROADCAST_DRIVER", v)
			}
		}
	}

	connV, connLine, connOK := p.get(conn)
	drvV, drvLine, drvOK := p.get(drv)
	if read == "" {
		// Unknown version: explain both keys instead of guessing.
		switch {
		case connOK && drvOK && connV != drvV:
			p.add(Warning, "broadcast-key-ambiguous", drvLine, fmt.Sprintf(
				"BROADCAST_CONNECTION=%s (line %d) and BROADCAST_DRIVER=%s disagree; Laravel 11+ reads BROADCAST_CONNECTION, Laravel 10 and older read BROADCAST_DRIVER (no composer.lock or config/broadcasting.php next to the .env tells which this app is)",
				connV, connLine, drvV), fmt.Sprintf("keep the one your Laravel version reads and delete the other, e.g. delete line %d", drvLine))
		case drvOK && !connOK:
			p.add(Info, "broadcast-key-ambiguous", drvLine,
				"only BROADCAST_DRIVER is set: Laravel 10 and older read it, Laravel 11+ ignores it and reads BROADCAST_CONNECTION (no composer.lock or config/broadcasting.php next to the .env tells which this app is)",
				fmt.Sprintf("on Laravel 11 or newer, write instead: BROADCAST_CONNECTION=%s", drvV))
		}
		if connOK {
			return broadcaster{connV, conn, false}
		}
		if drvOK {
			return broadcaster{drvV, drv, false}
		}
		return broadcaster{defaultBroadcaster, conn, true}
	}

	other, code := drv, "broadcast-driver-ignored"
	readV, readLine, readOK := connV, connLine, connOK
	otherV, otherLine, otherOK := drvV, drvLine, drvOK
	if read == drv {
		other, code = conn, "broadcast-connection-ignored"
		readV, readLine, readOK = drvV, drvLine, drvOK
		otherV, otherLine, otherOK = connV, connLine, connOK
	}
	if otherOK {
		switch {
		case !readOK:
			p.add(Error, code, otherLine, fmt.Sprintf("%s=%s is ignored: %s, which is not set, so events go to the %q broadcaster",
				other, otherV, why, defaultBroadcaster), fmt.Sprintf("replace line %d with: %s=%s", otherLine, read, otherV))
			return broadcaster{defaultBroadcaster, read, true}
		case readV != otherV:
			p.add(Warning, code, otherLine, fmt.Sprintf("%s=%s is ignored: %s, which is %q (line %d)", other, otherV, why, readV, readLine),
				fmt.Sprintf("delete line %d (or, if %s was meant, set line %d to %s=%s)", otherLine, otherV, readLine, read, otherV))
		default:
			p.add(Info, code, otherLine, fmt.Sprintf("%s is ignored (%s); it has the same value, so nothing breaks", other, why),
				fmt.Sprintf("delete line %d", otherLine))
		}
	}
	if !readOK {
		return broadcaster{defaultBroadcaster, read, true}
	}
	return broadcaster{readV, read, false}
}

// defaultBroadcaster is the framework's fallback when the variable is unset, on every version.
const defaultBroadcaster = "null"

// checkPublishing reports REVERB_* credentials next to a broadcaster that does not publish.
func (p *project) checkPublishing(b broadcaster) {
	if b.publishes() || !p.has("REVERB_APP_KEY") {
		return
	}
	if b.defaulted && (p.has("BROADCAST_CONNECTION") || p.has("BROADCAST_DRIVER")) {
		return // checkBroadcaster already reported the key Laravel ignores
	}
	line := p.line(b.key)
	name := b.name
	p.add(Warning, "broadcaster-not-reverb", line, fmt.Sprintf("REVERB_APP_KEY is set but %s is %q: Laravel sends events to the %s broadcaster, not to frontdoor", b.key, name, name),
		fmt.Sprintf("%s=reverb", b.key))
}

// checkBroadcasterSDK: the reverb and pusher broadcasters are Laravel's PusherBroadcaster, which
// needs the Pusher PHP SDK. laravel/reverb is what usually requires it, so removing Reverb's
// package (frontdoor replaces its server, not its broadcaster) removes the SDK, and every
// broadcast then fails with "Class Pusher\Pusher not found".
func (p *project) checkBroadcasterSDK(b broadcaster) {
	if !b.publishes() {
		return
	}
	if v, known := p.lockedPackage("pusher/pusher-php-server"); !known || v != "" {
		return // no composer.lock to tell, or the SDK is installed
	}
	p.addFile(Error, "broadcaster-sdk-missing", "composer.lock", fmt.Sprintf(
		"%s=%s needs the Pusher PHP SDK, and pusher/pusher-php-server is not in composer.lock: every broadcast fails (Class \"Pusher\\Pusher\" not found). laravel/reverb requires it; removing that package removes the SDK",
		b.key, b.name), "composer require pusher/pusher-php-server")
}

// checkPusherHost: laravel-config.md §5 #10. The pusher connection with an empty PUSHER_HOST
// posts to api-{cluster}.pusher.com, Pusher's own service.
func (p *project) checkPusherHost(b broadcaster) {
	if b.name != "pusher" || p.has("PUSHER_HOST") {
		return
	}
	cluster := p.val("PUSHER_APP_CLUSTER")
	if cluster == "" {
		cluster = "mt1"
	}
	host := p.appHost()
	if host == "" {
		host = "app.example.com"
	}
	p.add(Warning, "pusher-host-empty", p.line("PUSHER_HOST"), fmt.Sprintf(
		"%s=pusher with an empty PUSHER_HOST: Laravel publishes to api-%s.pusher.com (Pusher's service), not to a self-hosted server like frontdoor",
		b.key, cluster), fmt.Sprintf("PUSHER_HOST=%s\nPUSHER_PORT=443\nPUSHER_SCHEME=https", host))
}

// checkQueue: laravel-config.md §5 #12. Broadcast events are queued; without a worker nothing
// leaves the app and nothing reports an error.
func (p *project) checkQueue(b broadcaster) {
	if !b.publishes() {
		return
	}
	q, line, ok := p.get("QUEUE_CONNECTION")
	if ok && q == "sync" {
		return
	}
	if !ok {
		q = "database on Laravel 11+, sync on 10"
	}
	p.add(Info, "queue-worker-needed", line, fmt.Sprintf("QUEUE_CONNECTION is %s: broadcast events wait in the queue until a worker runs them (ShouldBroadcastNow events excepted)", q),
		"keep a worker running: php artisan queue:work (or Horizon), e.g. as a systemd service")
}

// checkPusherReverbAgree: the "PUSHER_* and REVERB_* both set and disagreeing". frontdoor
// serves the REVERB_APP_* app when REVERB_APP_ID is set; a pusher broadcaster signs with PUSHER_*.
func (p *project) checkPusherReverbAgree(b broadcaster) {
	var diffs []string
	line := 0
	for _, part := range []string{"APP_ID", "APP_KEY", "APP_SECRET"} {
		pk, rk := "PUSHER_"+part, "REVERB_"+part
		if !p.has(pk) || !p.has(rk) || p.val(pk) == p.val(rk) {
			continue
		}
		diffs = append(diffs, pk+" ≠ "+rk)
		if line == 0 {
			line = p.line(pk)
		}
	}
	if len(diffs) == 0 {
		return
	}
	sev := Warning
	why := "whichever of the two sets the browser (VITE_PUSHER_* or VITE_REVERB_*) and the broadcaster use must be the one the server has"
	if b.name == "pusher" {
		sev = Error
		why = "the pusher broadcaster signs with PUSHER_*, while frontdoor serves the REVERB_APP_* app: every publish gets 401"
	}
	p.add(sev, "pusher-reverb-disagree", line, fmt.Sprintf("both PUSHER_* and REVERB_* credentials are set and differ (%s); %s", strings.Join(diffs, ", "), why),
		"PUSHER_APP_ID=\"${REVERB_APP_ID}\"\nPUSHER_APP_KEY=\"${REVERB_APP_KEY}\"\nPUSHER_APP_SECRET=\"${REVERB_APP_SECRET}\"\n(written after the REVERB_APP_* lines; or delete the PUSHER_* lines you no longer use)")
}
