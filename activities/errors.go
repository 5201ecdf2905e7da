// Package activities holds what every role's activities share: the typed errors they
// return and how those errors cross Temporal (as application errors with a stable type
// name that workflows and the API can match on).
package activities

import (
	"errors"

	"go.temporal.io/sdk/temporal"
)

// Typed errors of storage work. The ZFS wrapper maps zfs/zpool stderr to these; an
// activity returns them as non-retryable application errors whose type is the Type* name.
var (
	ErrDatasetNotFound = errors.New("dataset does not exist")
	ErrPoolNotFound    = errors.New("pool does not exist")
	ErrPoolUnhealthy   = errors.New("pool is not healthy")
	ErrPoolFull        = errors.New("pool is out of space")
	ErrTooLarge        = errors.New("size exceeds what the pool can hold")
	ErrBusy            = errors.New("dataset is busy")
	ErrExists          = errors.New("dataset already exists")
	ErrHasClones       = errors.New("dataset has dependent clones")
	ErrNotInErator     = errors.New("nothing in the erator to restore")
	// ErrDeviceBooted: a vdisk cannot leave a device logged in to its target.
	ErrDeviceBooted = errors.New("the device is booted: its target has an iSCSI session")
	// ErrChecksum: an uploaded root file system is not the one its SHA-256 names.
	ErrChecksum = errors.New("checksum mismatch")
	// ErrNoAptSource: a ctemplate build found no archive in the server's apt sources;
	// ErrInvalidSuite: it was asked for a suite name debootstrap cannot take.
	ErrNoAptSource  = errors.New("no apt source of a release on the server")
	ErrInvalidSuite = errors.New("not a suite name")
	// ErrMissingCommand: the server lacks a program the work needs (debootstrap,
	// systemd-nspawn); install.sh warns of them, and a retry cannot install them.
	ErrMissingCommand = errors.New("a command this needs is not installed on the server")
)

// Application error type names, stable across releases: workflows decide on undo and
// retries by these, never by message text.
const (
	TypeDatasetNotFound = "DatasetNotFound"
	TypePoolNotFound    = "PoolNotFound"
	TypePoolUnhealthy   = "PoolUnhealthy"
	TypePoolFull        = "PoolFull"
	TypeTooLarge        = "TooLarge"
	TypeBusy            = "Busy"
	TypeExists          = "Exists"
	TypeHasClones       = "HasClones"
	TypeNotInErator     = "NotInErator"
	// TypeDeviceLocked: the device workflow refused to replace a locked device's disk.
	TypeDeviceLocked   = "DeviceLocked"
	TypeDeviceBooted   = "DeviceBooted"
	TypeChecksum       = "Checksum"
	TypeNoAptSource    = "NoAptSource"
	TypeInvalidSuite   = "InvalidSuite"
	TypeMissingCommand = "MissingCommand"
)

var typeOf = []struct {
	err       error
	name      string
	retryable bool
}{
	{ErrDatasetNotFound, TypeDatasetNotFound, false},
	{ErrPoolNotFound, TypePoolNotFound, false},
	{ErrPoolUnhealthy, TypePoolUnhealthy, false},
	{ErrPoolFull, TypePoolFull, false},
	{ErrTooLarge, TypeTooLarge, false},
	// A busy dataset (a mount or an open zvol) usually frees itself: retry.
	{ErrBusy, TypeBusy, true},
	{ErrExists, TypeExists, false},
	{ErrHasClones, TypeHasClones, false},
	{ErrNotInErator, TypeNotInErator, false},
	{ErrDeviceBooted, TypeDeviceBooted, false},
	{ErrChecksum, TypeChecksum, false},
	{ErrNoAptSource, TypeNoAptSource, false},
	{ErrInvalidSuite, TypeInvalidSuite, false},
	{ErrMissingCommand, TypeMissingCommand, false},
}

// NonRetryableTypes lists the error types a retry cannot fix; activity retry policies
// name them so Temporal stops at once.
func NonRetryableTypes() []string {
	var out []string
	for _, t := range typeOf {
		if !t.retryable {
			out = append(out, t.name)
		}
	}
	return out
}

// Wrap turns a typed error into a Temporal application error carrying its type name
// (non-retryable where a retry cannot help); other errors are returned unchanged, so
// Temporal retries them.
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	for _, t := range typeOf {
		if errors.Is(err, t.err) {
			if t.retryable {
				return temporal.NewApplicationErrorWithCause(err.Error(), t.name, err)
			}
			return temporal.NewNonRetryableApplicationError(err.Error(), t.name, err)
		}
	}
	return err
}

// IsType reports whether err (as a workflow sees an activity's failure) is an
// application error of the given type.
func IsType(err error, name string) bool {
	var app *temporal.ApplicationError
	return errors.As(err, &app) && app.Type() == name
}

// Message returns the message an activity failure carries, without Temporal's wrapping,
// for the operation's error field.
func Message(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	var te *temporal.TimeoutError
	if errors.As(err, &te) {
		return "timed out: " + te.Error()
	}
	return err.Error()
}
