package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/station"
)

// notifyHUP catches SIGHUP from now on (its default would end the
// process): call it before the station serves.
func notifyHUP() (<-chan os.Signal, func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	return hup, func() { signal.Stop(hup) }
}

// reloadOnHUP reloads the secret file on each SIGHUP, for a key rotation
// without a restart (add the new key, move the primaries to it, drop the
// old one). The log line names the key ids now in force, never a secret;
// a file with errors leaves the old ring in force and says why.
func reloadOnHUP(ctx context.Context, hup <-chan os.Signal, st *station.Station, secretFile string, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			keys, err := jobproto.LoadSecretFile(secretFile)
			if err != nil {
				log.Error("secret file not reloaded; the old keys stay in force", slog.String("secret_file", secretFile), slog.Any("err", err))
				continue
			}
			st.SetKeys(keys)
			log.Info("secret file reloaded", slog.String("secret_file", secretFile), slog.Any("keys", keys))
		}
	}
}
