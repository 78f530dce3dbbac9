// Command fakebin stands in for prowjob-dispatcher in image-build's unit
// test: it answers `version` like the real one, from the same -X flags.
package main

import (
	"fmt"
	"os"
	"runtime"
)

var version, revision = "dev", "unknown"

func main() {
	if len(os.Args) != 2 || os.Args[1] != "version" {
		os.Exit(2)
	}
	fmt.Printf("version: %s\nrevision: %s\ngo: %s\n", version, revision, runtime.Version())
}
