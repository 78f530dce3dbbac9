package dispatch

import (
	"context"
	"errors"
	"fmt"
)

// What-ifs (plans) and drain previews compute an engine run on a snapshot
// without any lock that admissions or operations take, so a costly one
// delays nothing but itself. Each is bounded in time
// (Options.PreviewTimeout) and at most maxPreviews compute at once, so
// that previews cannot take every core from admissions; the others wait
// for a slot within their deadline.

// maxPreviews bounds the previews computing at once.
const maxPreviews = 1

// startPreview bounds ctx by Options.PreviewTimeout and waits for a
// preview slot; done frees the slot and the context. what names the
// preview in errors; a deadline passed waiting wraps ErrTimedOut.
func (d *Dispatcher) startPreview(ctx context.Context, what string) (_ context.Context, done func(), _ error) {
	ctx, cancel := context.WithTimeout(ctx, d.opts.PreviewTimeout)
	select {
	case d.previews <- struct{}{}:
		return ctx, func() { <-d.previews; cancel() }, nil
	case <-ctx.Done():
		err := d.previewError(ctx, what, ctx.Err())
		cancel()
		return nil, nil, err
	}
}

// previewError wraps a preview's error: one of its deadline wraps
// ErrTimedOut with what to do about it.
func (d *Dispatcher) previewError(ctx context.Context, what string, err error) error {
	if err == nil || !errors.Is(err, context.DeadlineExceeded) || ctx.Err() == nil {
		return err
	}
	return fmt.Errorf("%s: gave up after the preview timeout of %s (another preview may hold the only slot): "+
		"retry later, or propose fewer group path regexes and job config files: %w: %w", what, d.opts.PreviewTimeout, ErrTimedOut, err)
}
