package plugin

import (
	"fmt"
	"os"
	"path"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
)

// DefaultTTL is how long a /reschedule override lasts when the config names no default_ttl.
const DefaultTTL = 168 * time.Hour

// Config is the plugin's config file.
type Config struct {
	// AllowedOrgs are GitHub orgs whose members may use the trusted commands.
	AllowedOrgs []string `json:"allowed_orgs,omitempty"`
	// AllowedTeams are GitHub teams ("org/team-slug") whose members may use the trusted commands.
	AllowedTeams []string `json:"allowed_teams,omitempty"`
	// AllowedUsers are GitHub logins that may use the trusted commands.
	AllowedUsers []string `json:"allowed_users,omitempty"`
	// DefaultTTL is how long a /reschedule override lasts ("168h"); DefaultTTL
	// when empty. At least dispatch.MinTTL; the dispatcher refuses one over
	// its --max-override-ttl (168h by default).
	DefaultTTL string `json:"default_ttl,omitempty"`
	// DispatcherURL is the dispatcher API's root ("http://prowjob-dispatcher:8080").
	DispatcherURL string `json:"dispatcher_url,omitempty"`
	// DispatcherTokenFile holds the bearer token for the dispatcher API's mutating calls.
	DispatcherTokenFile string `json:"dispatcher_token_file,omitempty"`

	// DispatcherConfigPath and ClusterConfigPath are the config files'
	// paths in the release repository: a PR changing one gets a plan
	// comment. DefaultDispatcherConfigPath and DefaultClusterConfigPath when empty.
	DispatcherConfigPath string `json:"dispatcher_config_path,omitempty"`
	ClusterConfigPath    string `json:"cluster_config_path,omitempty"`
	// JobConfigDir is the Prow job config dir in the release repository: a
	// PR changing a .yaml or .yml file under it gets a plan comment.
	// DefaultJobConfigDir when empty.
	JobConfigDir string `json:"job_config_dir,omitempty"`
	// JobConfigRepo ("openshift/release") and JobConfigBranch ("master" when
	// empty) are where the dispatcher reads its job config from in Git
	// (serve --job-config-git-url): a push to that branch asks for a
	// dispatch, which fetches first. Empty: pushes are ignored.
	JobConfigRepo   string `json:"job_config_repo,omitempty"`
	JobConfigBranch string `json:"job_config_branch,omitempty"`

	// TTL is DefaultTTL parsed, set by LoadConfig and ParseConfig.
	TTL time.Duration `json:"-"`
}

// jobConfigBranch is JobConfigBranch, "master" when empty.
func (c *Config) jobConfigBranch() string {
	if c.JobConfigBranch == "" {
		return "master"
	}
	return c.JobConfigBranch
}

// LoadConfig reads and validates a plugin config file.
func LoadConfig(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plugin config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("plugin config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig parses and validates a plugin config. Unknown fields are errors,
// so a typo cannot silently drop a trust rule.
func ParseConfig(data []byte) (*Config, error) {
	var cfg Config
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, err
	}
	if err := cfg.complete(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// complete fills defaults and validates the fields.
func (c *Config) complete() error {
	c.TTL = DefaultTTL
	if c.DispatcherConfigPath == "" {
		c.DispatcherConfigPath = DefaultDispatcherConfigPath
	}
	if c.ClusterConfigPath == "" {
		c.ClusterConfigPath = DefaultClusterConfigPath
	}
	if c.DispatcherConfigPath == c.ClusterConfigPath {
		return fmt.Errorf("dispatcher_config_path and cluster_config_path are both %q", c.ClusterConfigPath)
	}
	if c.JobConfigDir == "" {
		c.JobConfigDir = DefaultJobConfigDir
	}
	if dir := c.JobConfigDir; path.IsAbs(dir) || path.Clean(dir) != dir || dir == "." || dir == ".." || strings.HasPrefix(dir, "../") {
		return fmt.Errorf("job_config_dir %q: want a clean path in the repository, without a trailing slash (%q)", dir, DefaultJobConfigDir)
	}
	if c.DefaultTTL != "" {
		ttl, err := time.ParseDuration(c.DefaultTTL)
		if err != nil {
			return fmt.Errorf("default_ttl %q: %w", c.DefaultTTL, err)
		}
		if ttl <= 0 {
			return fmt.Errorf("default_ttl %q: must be positive", c.DefaultTTL)
		}
		if ttl < dispatch.MinTTL {
			return fmt.Errorf("default_ttl %q: under the dispatcher's minimum TTL %s", c.DefaultTTL, dispatch.MinTTL)
		}
		c.TTL = ttl
	}
	for i, t := range c.AllowedTeams {
		org, slug, ok := strings.Cut(t, "/")
		if !ok || org == "" || slug == "" || strings.Contains(slug, "/") {
			return fmt.Errorf("allowed_teams[%d] %q: want org/team-slug", i, t)
		}
	}
	for field, list := range map[string][]string{"allowed_orgs": c.AllowedOrgs, "allowed_users": c.AllowedUsers} {
		for i, v := range list {
			if strings.TrimSpace(v) == "" || strings.Contains(v, "/") {
				return fmt.Errorf("%s[%d] %q: want a GitHub login", field, i, v)
			}
		}
	}
	return nil
}
