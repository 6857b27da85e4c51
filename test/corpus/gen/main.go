// Command gen writes the station's test corpus to a directory, with an
// index.json of each message's expected verdict, and the bad-input set
// with its hostile.json, for scanning by hand:
//
//	go run ./test/corpus/gen -o /tmp/corpus
//	avstation scan -config avstation.yaml /tmp/corpus/*.eml
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/avstation/avstation/test/corpus"
)

func main() {
	out := flag.String("o", "corpus", "directory to write the corpus to")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	cases, err := corpus.Write(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	index, _ := json.MarshalIndent(cases, "", "  ")
	if err := os.WriteFile(filepath.Join(*out, "index.json"), append(index, '\n'), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hostile, err := corpus.WriteHostile(*out)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%d messages and %d hostile ones (hostile.json) in %s\n", len(cases), len(hostile), *out)
}
