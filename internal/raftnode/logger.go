package raftnode

import (
	"context"
	"fmt"
	"log/slog"
	"os"
)

// raftLogger adapts slog to the raft.Logger interface, so that raft's own
// messages carry our structured context instead of going to a global logger.
type raftLogger struct{ lg *slog.Logger }

func newRaftLogger(lg *slog.Logger) *raftLogger { return &raftLogger{lg: lg.With("component", "raft")} }

func (l *raftLogger) log(level slog.Level, msg string) { l.lg.Log(context.Background(), level, msg) }

func (l *raftLogger) Debug(v ...any) { l.log(slog.LevelDebug, fmt.Sprint(v...)) }
func (l *raftLogger) Debugf(format string, v ...any) {
	l.log(slog.LevelDebug, fmt.Sprintf(format, v...))
}
func (l *raftLogger) Error(v ...any) { l.log(slog.LevelError, fmt.Sprint(v...)) }
func (l *raftLogger) Errorf(format string, v ...any) {
	l.log(slog.LevelError, fmt.Sprintf(format, v...))
}
func (l *raftLogger) Info(v ...any)                 { l.log(slog.LevelInfo, fmt.Sprint(v...)) }
func (l *raftLogger) Infof(format string, v ...any) { l.log(slog.LevelInfo, fmt.Sprintf(format, v...)) }
func (l *raftLogger) Warning(v ...any)              { l.log(slog.LevelWarn, fmt.Sprint(v...)) }
func (l *raftLogger) Warningf(format string, v ...any) {
	l.log(slog.LevelWarn, fmt.Sprintf(format, v...))
}
func (l *raftLogger) Fatal(v ...any) { l.log(slog.LevelError, fmt.Sprint(v...)); os.Exit(1) }
func (l *raftLogger) Fatalf(format string, v ...any) {
	l.log(slog.LevelError, fmt.Sprintf(format, v...))
	os.Exit(1)
}
func (l *raftLogger) Panic(v ...any) { s := fmt.Sprint(v...); l.log(slog.LevelError, s); panic(s) }
func (l *raftLogger) Panicf(format string, v ...any) {
	s := fmt.Sprintf(format, v...)
	l.log(slog.LevelError, s)
	panic(s)
}
