package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// option is one serve setting reachable as a flag and as a FRONTDOOR_* variable. Its raw values
// are kept rather than applied at parse time, because flags and FRONTDOOR_* outrank the YAML file
// and the Laravel .env, which are only read after the flags have named them.
type option struct {
	name     string
	usage    string
	isBool   bool
	repeated bool   // a repeatable flag; in FRONTDOOR_* the values are comma-separated
	envSep   string // for a repeated option whose values contain commas: FRONTDOOR_* splits on this instead
	tlsOnly  bool   // means nothing while TLS is off (settings.inferTLSMode)
	apply    func(s *settings, values []string) error

	values []string
	source string // "--name" or "FRONTDOOR_NAME", for error messages
}

func (o *option) String() string { return strings.Join(o.values, ",") }

func (o *option) Set(v string) error {
	if o.source == "" || !o.repeated {
		o.values = o.values[:0]
	}
	o.values = append(o.values, v)
	o.source = "--" + o.name
	return nil
}

func (o *option) IsBoolFlag() bool { return o.isBool }

// envName is the FRONTDOOR_* variable that stands in for the flag: --acme-email is FRONTDOOR_ACME_EMAIL.
func (o *option) envName() string {
	return "FRONTDOOR_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

// fromEnv fills an option the command line left unset from its FRONTDOOR_* variable.
func (o *option) fromEnv(lookup func(string) (string, bool)) {
	if o.source != "" {
		return
	}
	v, ok := lookup(o.envName())
	if !ok {
		return
	}
	switch {
	case o.envSep != "":
		o.values = o.values[:0]
		for _, p := range strings.Split(v, o.envSep) {
			if p = strings.TrimSpace(p); p != "" {
				o.values = append(o.values, p)
			}
		}
	case o.repeated:
		o.values = splitList(v)
	default:
		o.values = []string{v}
	}
	o.source = o.envName()
}

func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("frontdoor "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// splitList splits a comma-separated list, dropping blanks, as REVERB-style list variables are written.
func splitList(v string) []string {
	var out []string
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// badValue formats the one error shape every setting uses: where it came from, what it was, what works.
// parseByteSize reads a size as Nginx's client_max_body_size and PHP's upload_max_filesize
// write it (64M, 512k, 1G; binary multiples), or a plain byte count. An "iB"/"B" tail is accepted.
func parseByteSize(v string) (int64, error) {
	const want = "want a size such as 64M, 512K, 1G or a byte count"
	s := strings.TrimSpace(v)
	s = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(s, "B"), "b"), "i")
	shift := 0
	if s != "" {
		switch s[len(s)-1] {
		case 'k', 'K':
			shift = 10
		case 'm', 'M':
			shift = 20
		case 'g', 'G':
			shift = 30
		}
		if shift > 0 {
			s = s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || n < 0 || n > (1<<62)>>shift {
		return 0, errors.New(want)
	}
	return n << shift, nil
}

func badValue(source, value, valid string) error {
	return fmt.Errorf("%s: invalid value %q: %s", source, value, valid)
}

func envLookup(key string) (string, bool) { return os.LookupEnv(key) }
