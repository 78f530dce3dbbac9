package gitbackup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"sigs.k8s.io/prow/cmd/generic-autobumper/updater"
	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/gitclone"
)

// runOnce does one backup: it fetches the base branch, replaces the file's
// buildFarm with the live one and, when that changes the file, commits on
// the head branch, force-pushes it and opens or updates the pull request
// (a dry run prints the diff instead). It returns the result, the pull
// request's number (0 when none was touched) and the error of a failed run.
func (b *Backup) runOnce(ctx context.Context) (string, int, error) {
	o := b.opts
	log := o.Logger.WithValues("repo", o.Org+"/"+o.Repo, "base", o.BaseBranch, "path", o.Path)
	fail := func(err error) (string, int, error) { return ResultError, 0, err }
	farm := o.BuildFarm()

	sparse := []string{} // the root's files only
	if dir := path.Dir(o.Path); dir != "." {
		sparse = []string{dir}
	}
	repo, err := gitclone.Checkout(o.Git, o.Org, o.Repo, o.BaseBranch, sparse)
	if err != nil {
		return fail(err)
	}
	defer func() {
		if err := repo.Clean(); err != nil {
			log.Error(err, "Removing the clone", "dir", repo.Directory())
		}
	}()
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	file := filepath.Join(repo.Directory(), filepath.FromSlash(o.Path))
	old, err := os.ReadFile(file)
	if err != nil {
		return fail(fmt.Errorf("%s on %s: %w", o.Path, o.BaseBranch, err))
	}
	updated, err := config.ReplaceBuildFarm(old, farm)
	if err != nil {
		return fail(fmt.Errorf("%s on %s: %w", o.Path, o.BaseBranch, err))
	}
	if bytes.Equal(old, updated) {
		log.Info("Git backup: the base branch already has the live buildFarm; nothing pushed")
		return ResultUnchanged, 0, nil
	}
	diff, err := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{
		A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(updated)),
		FromFile: "a/" + o.Path, ToFile: "b/" + o.Path, Context: 3,
	})
	if err != nil {
		return fail(fmt.Errorf("diffing %s: %w", o.Path, err))
	}
	added, removed := diffStat(diff)
	if o.DryRun {
		if o.DiffOut != nil {
			_, err = fmt.Fprint(o.DiffOut, diff)
		} else {
			log.Info("Git backup dry run: the pull request would change", "diff", diff)
		}
		log.Info("Git backup dry run: nothing pushed or opened", "added", added, "removed", removed)
		return ResultDryRun, 0, err
	}

	if err := repo.CheckoutNewBranch(o.HeadBranch); err != nil {
		return fail(fmt.Errorf("creating the head branch %s: %w", o.HeadBranch, err))
	}
	if err := os.WriteFile(file, updated, 0o644); err != nil {
		return fail(fmt.Errorf("writing %s: %w", o.Path, err))
	}
	name, email, err := b.gitUser()
	if err != nil {
		return fail(err)
	}
	for _, kv := range [][2]string{{"user.name", name}, {"user.email", email}, {"commit.gpgsign", "false"}} {
		if err := repo.Config(kv[0], kv[1]); err != nil {
			return fail(fmt.Errorf("git config %s: %w", kv[0], err))
		}
	}
	body := b.body(farm)
	if err := repo.Commit(o.Title, body); err != nil {
		return fail(fmt.Errorf("committing %s: %w", o.Path, err))
	}
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	source := o.HeadBranch
	if o.PushToFork {
		err = repo.PushToFork(o.HeadBranch, true)
		if err == nil {
			var bot string
			if bot, err = b.botLogin(); err == nil {
				source = bot + ":" + o.HeadBranch
			}
		}
	} else {
		err = repo.PushToCentral(o.HeadBranch, true)
	}
	if err != nil {
		return fail(fmt.Errorf("pushing %s: %w", o.HeadBranch, err))
	}
	n, err := updater.EnsurePRWithLabels(o.Org, o.Repo, o.Title, body, source, o.BaseBranch, o.HeadBranch, updater.AllowMods, o.GitHub, o.Labels)
	if err != nil {
		pr := 0
		if n != nil {
			pr = *n
		}
		return ResultError, pr, fmt.Errorf("pull request %s -> %s/%s %s: %w", source, o.Org, o.Repo, o.BaseBranch, err)
	}
	log.Info("Git backup: pushed the live buildFarm and opened or updated the pull request",
		"pullRequest", *n, "head", source, "added", added, "removed", removed)
	return ResultPushed, *n, nil
}

// body is the commit's and the pull request's description: Body and a line
// on the farm it writes.
func (b *Backup) body(farm map[string]map[string]*config.BuildFarmCluster) string {
	files, clusters := 0, 0
	for _, byCluster := range farm {
		for _, c := range byCluster {
			if c != nil && len(c.Filenames) > 0 {
				clusters++
				files += len(c.Filenames)
			}
		}
	}
	return fmt.Sprintf("%s\n\nThe new buildFarm places %d job files on %d clusters.", b.opts.Body, files, clusters)
}

// gitUser names the committer: Options.GitUser, or the GitHub bot.
func (b *Backup) gitUser() (name, email string, err error) {
	if b.opts.GitUser != nil {
		if name, email, err = b.opts.GitUser(); err != nil {
			return "", "", fmt.Errorf("git user: %w", err)
		}
		return name, email, nil
	}
	u, err := b.opts.GitHub.BotUser()
	if err != nil {
		return "", "", fmt.Errorf("the GitHub bot, for the committer: %w", err)
	}
	return BotIdentity(u)
}

// BotIdentity is the git name and email of a GitHub user, the bot: its
// name (its login when it has none) and its email (its noreply address when
// it shows none).
func BotIdentity(u *github.UserData) (name, email string, err error) {
	if u == nil || u.Login == "" {
		return "", "", errors.New("the GitHub bot has no login")
	}
	name, email = u.Name, u.Email
	if name == "" {
		name = u.Login
	}
	if email == "" {
		email = u.Login + "@users.noreply.github.com"
	}
	return name, email, nil
}

// botLogin is the GitHub bot's login, the owner of its fork.
func (b *Backup) botLogin() (string, error) {
	u, err := b.opts.GitHub.BotUser()
	if err != nil {
		return "", fmt.Errorf("the GitHub bot, for the fork: %w", err)
	}
	return u.Login, nil
}

// diffStat counts the added and removed lines of a unified diff.
func diffStat(diff string) (added, removed int) {
	for _, l := range strings.Split(diff, "\n") {
		switch {
		case strings.HasPrefix(l, "+++"), strings.HasPrefix(l, "---"):
		case strings.HasPrefix(l, "+"):
			added++
		case strings.HasPrefix(l, "-"):
			removed++
		}
	}
	return added, removed
}
