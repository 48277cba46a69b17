package main

import (
	"context"
	"fmt"
	"io"

	"github.com/frontdoorhq/frontdoor/cmd/frontdoor/internal/doctor"
)

// doctorSites is `frontdoor doctor --config frontdoor.yaml`: every site's env_file is checked as
// `doctor --env-file` checks one (its own live server derived from its REVERB_* variables), each
// report under the site's name. The exit code is the worst of them. Without sites:, the YAML
// describes one site, checked with --env-file as before.
func doctorSites(ctx context.Context, config string, opts doctor.Options, stdout, stderr io.Writer) int {
	s, err := loadSettings([]string{"--config", config, "--env-file", ""}, envLookup, io.Discard)
	if err != nil {
		fmt.Fprintf(stderr, "frontdoor doctor: %v\n", err)
		return 2
	}
	if len(s.Sites) == 0 {
		return doctor.Run(ctx, opts, stdout)
	}
	if opts.URL != "" {
		fmt.Fprintln(stderr, "frontdoor doctor: --url with --config: each site's server is derived from its env_file; check one site with --env-file and --url")
		return 2
	}
	worst := 0
	for _, site := range s.Sites {
		if site.EnvFile == "" {
			fmt.Fprintf(stdout, "site %s: no env_file, nothing to check\n", site.Name)
			continue
		}
		if !opts.JSON {
			fmt.Fprintf(stdout, "site %s:\n", site.Name)
		}
		o := opts
		o.EnvFile = site.EnvFile
		worst = max(worst, doctor.Run(ctx, o, stdout))
	}
	return worst
}
