package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// MaxRequestBytes bounds the body of one API request.
const MaxRequestBytes = 64 << 10

// writeJSON writes v as the JSON body of a code response. v is encoded
// before the status line goes out, so a value JSON cannot hold (such as an
// infinite number) gives a 500 naming the problem, never a 200 with a
// broken or empty body.
func writeJSON(w http.ResponseWriter, code int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		body, _ = json.Marshal(api.Error{Error: "encoding the answer: " + err.Error()})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(body, '\n'))
}

// writeError writes an api.Error body.
func writeError(w http.ResponseWriter, code int, format string, args ...any) {
	writeJSON(w, code, api.Error{Error: fmt.Sprintf(format, args...)})
}

// bodyError is a request body the API refuses, with the status to answer.
type bodyError struct {
	code int
	msg  string
}

func (e *bodyError) Error() string { return e.msg }

// readJSON decodes exactly one JSON value of r's body into v: at most
// MaxRequestBytes, no unknown fields, nothing after the value. An empty body
// is an error unless allowEmpty, when v is left as it is.
func readJSON(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool) *bodyError {
	return readJSONLimit(w, r, v, allowEmpty, MaxRequestBytes)
}

// readJSONLimit is readJSON with a body of at most limit bytes.
func readJSONLimit(w http.ResponseWriter, r *http.Request, v any, allowEmpty bool, limit int64) *bodyError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, limit))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		case errors.Is(err, io.EOF):
			if allowEmpty {
				return nil
			}
			return &bodyError{http.StatusBadRequest, "request body is empty; want a JSON object"}
		default:
			return &bodyError{http.StatusBadRequest, "request body: " + err.Error()}
		}
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body is larger than %d bytes", tooBig.Limit)}
		}
		return &bodyError{http.StatusBadRequest, "request body: want a single JSON value, found more after it"}
	}
	return nil
}
