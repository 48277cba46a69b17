package pusher

// subSet is a socket's channels with, for presence channels, its user id in each (§5.4; "" for
// other kinds). Nearly every socket is on one to a few channels, and an idle socket's memory is
// the server's main cost: a short slice takes 32 bytes an entry where a Go map takes about 350
// bytes for its first. Past subSetSmall entries it moves to a map, so a client subscribed to
// thousands of channels still costs O(1) a lookup.
type subSet struct {
	small []subEntry
	big   map[string]string // replaces small once it outgrows subSetSmall
}

type subEntry struct{ name, uid string }

const subSetSmall = 8

func (ss *subSet) get(name string) (string, bool) {
	if ss.big != nil {
		uid, ok := ss.big[name]
		return uid, ok
	}
	for i := range ss.small {
		if ss.small[i].name == name {
			return ss.small[i].uid, true
		}
	}
	return "", false
}

func (ss *subSet) set(name, uid string) {
	if ss.big != nil {
		ss.big[name] = uid
		return
	}
	for i := range ss.small {
		if ss.small[i].name == name {
			ss.small[i].uid = uid
			return
		}
	}
	if len(ss.small) < subSetSmall {
		ss.small = append(ss.small, subEntry{name, uid})
		return
	}
	ss.big = make(map[string]string, 2*subSetSmall)
	for _, e := range ss.small {
		ss.big[e.name] = e.uid
	}
	ss.big[name] = uid
	ss.small = nil
}

// remove deletes name and returns the user id it had.
func (ss *subSet) remove(name string) (string, bool) {
	if ss.big != nil {
		uid, ok := ss.big[name]
		delete(ss.big, name)
		return uid, ok
	}
	for i := range ss.small {
		if ss.small[i].name == name {
			uid := ss.small[i].uid
			last := len(ss.small) - 1
			ss.small[i] = ss.small[last]
			ss.small[last] = subEntry{} // drop the strings
			ss.small = ss.small[:last]
			if last == 0 {
				ss.small = nil // an unsubscribed socket keeps no backing array
			}
			return uid, true
		}
	}
	return "", false
}

func (ss *subSet) len() int {
	if ss.big != nil {
		return len(ss.big)
	}
	return len(ss.small)
}

// each calls f for every channel until f returns false.
func (ss *subSet) each(f func(name, uid string) bool) {
	if ss.big != nil {
		for name, uid := range ss.big {
			if !f(name, uid) {
				return
			}
		}
		return
	}
	for _, e := range ss.small {
		if !f(e.name, e.uid) {
			return
		}
	}
}
