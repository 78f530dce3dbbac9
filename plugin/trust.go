package plugin

import (
	"errors"
	"fmt"
	"strings"

	"sigs.k8s.io/prow/pkg/github"
)

// trusted reports whether login may use the trusted commands: it is listed in
// allowed_users, or a member of an allowed org or team. GitHub errors are
// returned only when no rule granted trust, so one failing lookup does not
// lock out someone another rule admits.
func trusted(ghc githubClient, cfg *Config, login string) (bool, error) {
	norm := github.NormLogin(login)
	for _, u := range cfg.AllowedUsers {
		if github.NormLogin(u) == norm {
			return true, nil
		}
	}
	var errs []error
	for _, org := range cfg.AllowedOrgs {
		ok, err := ghc.IsMember(org, login)
		if err != nil {
			errs = append(errs, fmt.Errorf("org %s membership: %w", org, err))
			continue
		}
		if ok {
			return true, nil
		}
	}
	for _, team := range cfg.AllowedTeams {
		org, slug, _ := strings.Cut(team, "/")
		ok, err := ghc.TeamBySlugHasMember(org, slug, login)
		if err != nil {
			errs = append(errs, fmt.Errorf("team %s membership: %w", team, err))
			continue
		}
		if ok {
			return true, nil
		}
	}
	return false, errors.Join(errs...)
}

// whoMayUse describes the trusted people for replies and help.
func whoMayUse(cfg *Config) string {
	var parts []string
	if len(cfg.AllowedOrgs) > 0 {
		parts = append(parts, "members of the "+joinQuoted(cfg.AllowedOrgs)+" GitHub org(s)")
	}
	if len(cfg.AllowedTeams) > 0 {
		parts = append(parts, "members of the "+joinQuoted(cfg.AllowedTeams)+" GitHub team(s)")
	}
	if len(cfg.AllowedUsers) > 0 {
		users := make([]string, len(cfg.AllowedUsers))
		for i, u := range cfg.AllowedUsers {
			users[i] = "@" + u
		}
		parts = append(parts, strings.Join(users, ", "))
	}
	if len(parts) == 0 {
		return "nobody (the plugin's config allows no org, team or user)"
	}
	return strings.Join(parts, "; ")
}

func joinQuoted(list []string) string {
	q := make([]string, len(list))
	for i, s := range list {
		q[i] = code(s)
	}
	return strings.Join(q, ", ")
}
