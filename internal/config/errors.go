package config

import (
	"errors"
	"fmt"
	"strings"
)

var (
	// ErrHelp is returned by Parse after it has written the help text.
	ErrHelp = errors.New("config: help requested")
	// ErrVersion is returned by Parse after it has written the version.
	ErrVersion = errors.New("config: version requested")
	// ErrUsage marks a malformed command line: an unknown flag, a flag
	// without its value, or a positional argument.
	ErrUsage = errors.New("config: invalid command line")
	// ErrInvalid marks a value that does not parse or does not validate,
	// whichever source (flag, config file, environment) it came from.
	ErrInvalid = errors.New("config: invalid value")
	// ErrConfigFile marks a config file that cannot be read, is not YAML,
	// or holds a key that is not a flag name.
	ErrConfigFile = errors.New("config: bad config file")
)

// origin says where a setting came from, so that an error can point the
// operator at the place to fix: the flag, the file key or the variable.
type origin int

const (
	fromDefault origin = iota
	fromEnv
	fromFile
	fromFlag
)

// fieldError is every error Parse and Validate return (other than ErrHelp and
// ErrVersion). Its text is one line so that main can print it as is.
type fieldError struct {
	kind   error  // one of the sentinels above
	from   origin // decides the wording of key
	file   string // config file path, when from == fromFile or for file-level errors
	key    string // flag name without dashes
	value  string
	reason string
	msg    string // a complete message body for errors that are not about one value
	cause  error
}

func (e *fieldError) Error() string {
	var b strings.Builder
	if e.file != "" && (e.from == fromFile || e.kind == ErrConfigFile) {
		b.WriteString("config file ")
		b.WriteString(e.file)
		b.WriteString(": ")
	}
	if e.msg != "" {
		b.WriteString(e.msg)
	} else {
		var where string
		switch e.from {
		case fromFile:
			where = fmt.Sprintf("key %q", e.key)
		case fromEnv:
			where = "environment variable " + envName(e.key)
		default:
			where = "flag --" + e.key
		}
		fmt.Fprintf(&b, "invalid value %q for %s: %s", e.value, where, e.reason)
	}
	// Causes such as YAML parser errors may span lines; main prints one.
	return strings.ReplaceAll(b.String(), "\n", "; ")
}

func (e *fieldError) Unwrap() []error {
	if e.cause != nil {
		return []error{e.kind, e.cause}
	}
	return []error{e.kind}
}

// invalid builds an ErrInvalid error about one value. Its origin is filled in
// by Parse, which knows where the value came from.
func invalid(key, value, reason string) *fieldError {
	return &fieldError{kind: ErrInvalid, key: key, value: value, reason: reason}
}

// badValue is returned by the value parsers when one element of a list is at
// fault, so that the error quotes that element instead of the whole list.
type badValue struct {
	value  string
	reason string
}

func (b *badValue) Error() string { return fmt.Sprintf("%q: %s", b.value, b.reason) }
