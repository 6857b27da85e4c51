package config

import "github.com/avstation/avstation/scanner/clamd"

func checkClamdAddr(a string) error {
	_, err := clamd.New(a)
	return err
}
