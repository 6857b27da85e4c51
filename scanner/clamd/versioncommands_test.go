package clamd

import (
	"bufio"
	"io"
	"net"
	"slices"
	"testing"
)

func TestParseVersionCommands(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		want     Version
		wantCmds []string
		wantErr  bool
	}{
		{
			// As clamd 1.4.6 answers here.
			name:     "engine only",
			line:     "ClamAV 1.4.6| COMMANDS: SCAN QUIT RELOAD PING CONTSCAN VERSIONCOMMANDS VERSION END SHUTDOWN MULTISCAN FILDES STATS IDSESSION INSTREAM DETSTATSCLEAR DETSTATS ALLMATCHSCAN\x00",
			want:     Version{Engine: "ClamAV 1.4.6"},
			wantCmds: []string{"SCAN", "QUIT", "RELOAD", "PING", "CONTSCAN", "VERSIONCOMMANDS", "VERSION", "END", "SHUTDOWN", "MULTISCAN", "FILDES", "STATS", "IDSESSION", "INSTREAM", "DETSTATSCLEAR", "DETSTATS", "ALLMATCHSCAN"},
		},
		{
			name:     "with database",
			line:     "ClamAV 1.4.6/27456| COMMANDS: PING INSTREAM",
			want:     Version{Engine: "ClamAV 1.4.6", Database: "27456"},
			wantCmds: []string{"PING", "INSTREAM"},
		},
		{name: "old clamd", line: "ClamAV 0.94/9000", want: Version{Engine: "ClamAV 0.94", Database: "9000"}},
		{name: "empty list", line: "ClamAV 1.4.6| COMMANDS:", want: Version{Engine: "ClamAV 1.4.6"}, wantCmds: []string{}},
		{name: "unknown command", line: "UNKNOWN COMMAND", wantErr: true},
		{name: "control character", line: "ClamAV 1.4.6| COMMANDS: PING\tINSTREAM", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, cmds, err := ParseVersionCommands(tt.line)
			if tt.wantErr {
				if _, ok := err.(*ReplyError); !ok {
					t.Fatalf("error %v, want a *ReplyError", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v != tt.want || !slices.Equal(cmds, tt.wantCmds) || (cmds == nil) != (tt.wantCmds == nil) {
				t.Errorf("ParseVersionCommands = %+v, %q; want %+v, %q", v, cmds, tt.want, tt.wantCmds)
			}
		})
	}
}

func TestVersionCommands(t *testing.T) {
	f := startFake(t, "tcp", func(conn net.Conn) {
		cmd, err := readCommand(bufio.NewReader(conn))
		if err != nil || cmd != "VERSIONCOMMANDS" {
			t.Errorf("fake clamd: command %q, %v", cmd, err)
			return
		}
		io.WriteString(conn, "ClamAV 1.4.6| COMMANDS: PING INSTREAM\x00")
	})
	c, err := New(f.addr)
	if err != nil {
		t.Fatal(err)
	}
	v, cmds, err := c.VersionCommands(t.Context())
	if err != nil || v.Engine != "ClamAV 1.4.6" || !slices.Equal(cmds, []string{"PING", "INSTREAM"}) {
		t.Errorf("VersionCommands = %+v, %q, %v", v, cmds, err)
	}
}

func FuzzParseVersionCommands(f *testing.F) {
	f.Add("ClamAV 1.4.6| COMMANDS: SCAN PING INSTREAM")
	f.Add("ClamAV 1.4.6/27456/Sat Nov 21 09:30:00 2026| COMMANDS: PING")
	f.Add("ClamAV 0.94")
	f.Fuzz(func(t *testing.T, line string) {
		v, cmds, err := ParseVersionCommands(line)
		if err != nil {
			if v != (Version{}) || cmds != nil {
				t.Errorf("error %v with a result %+v, %q", err, v, cmds)
			}
			return
		}
		for _, c := range cmds {
			if c == "" {
				t.Errorf("empty command in %q", cmds)
			}
		}
	})
}
