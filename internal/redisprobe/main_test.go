package redisprobe

import (
	"fmt"
	"os"
	"testing"

	"github.com/stratops/stratops/internal/redistest"
)

var server *redistest.Server

func TestMain(m *testing.M) {
	s, err := redistest.Start(redistest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}
