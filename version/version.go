// Package version names this build of avstation.
package version

// Version is set at build time with -ldflags "-X github.com/avstation/avstation/version.Version=1.2.3".
var Version = "0.1.0-dev"

// Scanner is the X-Virus-Scanned value for a scan done on host.
func Scanner(host string) string {
	return "avstation " + Version + " on " + host
}
