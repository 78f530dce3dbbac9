package plugin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// maxReasonLen bounds the dispatcher's reason quoted in a reply.
const maxReasonLen = 500

// describeError turns a dispatcher call's error into a sentence for the PR.
// Nothing the dispatcher refused or failed changed anything, and the reply says so.
func describeError(err error) string {
	var se *api.StatusError
	if errors.As(err, &se) {
		reason := truncate(se.Message)
		switch {
		case se.Code == http.StatusNotFound:
			return fmt.Sprintf("the dispatcher does not know that: %s. Nothing was changed.", reason)
		case se.Code == http.StatusBadRequest || se.Code == http.StatusConflict:
			return fmt.Sprintf("the dispatcher refused the request: %s. Nothing was changed.", reason)
		case se.Code == http.StatusUnauthorized || se.Code == http.StatusForbidden:
			return "the dispatcher refused this plugin's credentials, so nothing was changed. Please tell the CI operators."
		case se.Code == http.StatusInsufficientStorage:
			return fmt.Sprintf("the dispatcher applied it but could not save it (%s), so a restart of the dispatcher would undo it. Please tell the CI operators.", reason)
		case se.Code == http.StatusServiceUnavailable:
			return fmt.Sprintf("the dispatcher is not ready yet (%s). Nothing was changed; please try again later.", reason)
		default:
			return fmt.Sprintf("the dispatcher failed (HTTP %d: %s). Nothing was changed; please try again later.", se.Code, reason)
		}
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return "the dispatcher did not answer in time. Nothing was changed, unless the dispatcher finished after I stopped waiting: check with `/dispatch` before you try again."
	}
	return "the dispatcher could not be reached. Nothing was changed; please try again later."
}

// truncate bounds a dispatcher's message quoted in a reply to maxReasonLen bytes.
func truncate(message string) string {
	if len(message) <= maxReasonLen {
		return message
	}
	return strings.ToValidUTF8(message[:maxReasonLen], "") + "…"
}

// isNotFound reports whether the dispatcher answered 404.
func isNotFound(err error) bool {
	var se *api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}
