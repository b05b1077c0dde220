//go:build !unix

package proc

import "os"

// resume does nothing where processes cannot be stopped with a signal.
func resume(*os.Process) {}
