// Command frontdoor is the edge server for Laravel apps: TLS, the Pusher protocol (Reverb's job)
// and the PHP front door (Nginx's job) in one process.
//
// Subcommands: serve (default), restart, doctor, version. Each is a function returning an exit code,
// so main stays a dispatcher.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/frontdoorhq/frontdoor/bench"
	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/doctor"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `frontdoor: the edge server for Laravel apps (TLS, Pusher WebSockets, PHP front door)

Usage:
  frontdoor [serve] [flags]      run the server (default; see frontdoor serve --help)
  frontdoor restart [--pid-file] replace a running server with the binary on disk, without downtime
  frontdoor doctor [flags]       check a Laravel .env and a running server
  frontdoor bench <scenario>     load-test a Pusher server (frontdoor, Reverb, Soketi); see frontdoor bench help
  frontdoor version              print version, commit and Go version
`

func run(args []string, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return cmdServe(args, stdout, stderr)
	case "restart":
		return cmdRestart(args, stdout, stderr)
	case "doctor":
		return cmdDoctor(args, stdout, stderr)
	case "bench":
		return bench.Main(args, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "frontdoor: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
}

func cmdDoctor(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("doctor", stderr)
	var opts doctor.Options
	fs.StringVar(&opts.EnvFile, "env-file", ".env", "Laravel `.env` file to check")
	fs.StringVar(&opts.URL, "url", "", "server to check live, e.g. https://app.example.com (default: from REVERB_HOST/PORT/SCHEME)")
	fs.BoolVar(&opts.JSON, "json", false, "print findings as JSON")
	fs.DurationVar(&opts.Timeout, "timeout", 5*time.Second, "time limit for each live check")
	fs.BoolVar(&opts.Insecure, "insecure", false, "do not verify the server's TLS certificate during live checks")
	fs.StringVar(&opts.CAFile, "ca-file", "", "PEM `file` of a private CA doctor trusts for its live TLS checks (PHP does not: see README)")
	var config string
	fs.StringVar(&config, "config", "", "frontdoor YAML `file`: with sites:, check each site's env_file")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if config != "" {
		return doctorSites(ctx, config, opts, stdout, stderr)
	}
	return doctor.Run(ctx, opts, stdout)
}
