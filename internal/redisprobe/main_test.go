package redisprobe

import (
	"fmt"
	"os"
	"testing"

	"github.com/stratops/stratops/internal/redisserver"
)

var server *redisserver.Server

func TestMain(m *testing.M) {
	s, err := redisserver.Start(redisserver.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server = s
	code := m.Run()
	s.Close()
	os.Exit(code)
}
