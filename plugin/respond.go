package plugin

import (
	"fmt"
	"strings"

	"sigs.k8s.io/prow/pkg/github"
	"sigs.k8s.io/prow/pkg/plugins"
)

// maxReplyBytes keeps replies under GitHub's comment size limit (65536 characters).
const maxReplyBytes = 60000

// reply answers a comment on its PR, quoting the comment it answers. Every
// reply of the plugin goes through here.
func reply(ghc githubClient, ic github.IssueCommentEvent, message string) error {
	body := plugins.FormatResponseRaw(ic.Comment.Body, ic.Comment.HTMLURL, ic.Comment.User.Login, message)
	if len(body) > maxReplyBytes {
		// The quoted comment is what can grow without bound; drop it first.
		body = plugins.FormatResponseRaw("(comment too long to quote)", ic.Comment.HTMLURL, ic.Comment.User.Login, message)
	}
	if err := ghc.CreateComment(ic.Repo.Owner.Login, ic.Repo.Name, ic.Issue.Number, body); err != nil {
		return fmt.Errorf("commenting on %s/%s#%d: %w", ic.Repo.Owner.Login, ic.Repo.Name, ic.Issue.Number, err)
	}
	return nil
}

// code renders s as inline code; backticks in s are dropped so it cannot break out.
func code(s string) string {
	return "`" + strings.ReplaceAll(s, "`", "") + "`"
}

// cell makes s safe inside a markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
