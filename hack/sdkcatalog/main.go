// Command sdkcatalog writes the standard's catalog as JSON (the format the
// operator writes a Strategy's catalog in) for the Python package, which
// uses it when a pod names no catalog file: make asyncapi runs it, and
// make verify fails when the file is stale.
//
//	go run ./hack/sdkcatalog sdk/python/stratops_messaging/standard_catalog.json
package main

import (
	"fmt"
	"os"

	"github.com/stratops/stratops/pkg/messaging"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sdkcatalog <output file>")
		os.Exit(2)
	}
	cat := messaging.Standard(messaging.ModeBacktest)
	b, err := cat.Marshal()
	if err == nil {
		err = os.WriteFile(os.Args[1], b, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sdkcatalog:", err)
		os.Exit(1)
	}
}
