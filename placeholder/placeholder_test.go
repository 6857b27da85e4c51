package placeholder

import (
	"strings"
	"testing"
)

func TestExpand(t *testing.T) {
	vals := map[string]string{"list": "dev", "virusname": "%%List%%"}
	tests := []struct{ in, want string }{
		{"to %%List%%", "to dev"},
		{"%%list%% and %%LIST%%", "dev and dev"},
		{"%%VirusName%%", "%%List%%"}, // values are not expanded again
		{"%%Nope%% %%List%%", "%%Nope%% dev"},
		{"100%% %%List%%", "100%% dev"},
		{"dangling %%", "dangling %%"},
	}
	for _, tt := range tests {
		if got := Expand(tt.in, vals); got != tt.want {
			t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestCheck(t *testing.T) {
	known := []string{"List", "VirusName"}
	tests := []struct {
		in  string
		bad string // in the error; "" for none
	}{
		{"Your posting to %%List%% had %%virusname%%", ""},
		{"%%Lsit%% is a typo", "%%Lsit%% is not a placeholder; use %%List%%, %%VirusName%%"},
		{"100%% sure, 50%% off", ""},
		{"%%List%%%%FileName%%", "%%FileName%%"},
		{"no placeholders", ""},
	}
	for _, tt := range tests {
		err := Check(tt.in, known)
		switch {
		case tt.bad == "" && err != nil:
			t.Errorf("Check(%q) = %v, want nil", tt.in, err)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("Check(%q) = %v, want an error with %q", tt.in, err, tt.bad)
		}
	}
}
