// Command caddy is Caddy with its standard modules and session_gate, so the
// module can be run and tested without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/session-gate/session_gate"
)

func main() {
	caddycmd.Main()
}
