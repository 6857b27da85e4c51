package config

import "github.com/avstation/avstation/bytesize"

// ByteSize is a size in bytes written with a unit: 512KiB, 10MiB.
type ByteSize = bytesize.Size

// ParseByteSize parses "10MiB", "64K", "1000".
func ParseByteSize(s string) (ByteSize, error) { return bytesize.Parse(s) }
