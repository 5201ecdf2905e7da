package models

import (
	"errors"
	"fmt"
)

// ErrNotFound is returned for an object that is absent or not visible to the caller:
// both get the same answer, so nothing leaks about other clients' objects.
var ErrNotFound = errors.New("not found")

// ValidationError is an invalid value for a named field (HTTP 422).
type ValidationError struct {
	Field string
	Msg   string
}

func (e *ValidationError) Error() string { return e.Field + ": " + e.Msg }

// Invalid builds a ValidationError.
func Invalid(field, format string, args ...any) error {
	return &ValidationError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ConflictError is a request that conflicts with the current state (HTTP 409), with what to fix.
type ConflictError struct {
	Field string
	Msg   string
}

func (e *ConflictError) Error() string { return e.Msg }

// Conflict builds a ConflictError.
func Conflict(field, format string, args ...any) error {
	return &ConflictError{Field: field, Msg: fmt.Sprintf(format, args...)}
}

// ForbiddenError is an action the caller may not take on an object it can see (HTTP 403).
// UnavailableError is a change a service the panel depends on (the workflow engine)
// could not make now; asking again later may succeed.
type UnavailableError struct {
	Field string
	Msg   string // for the client
	Err   error  // the cause, for the panel's log only
}

func (e *UnavailableError) Error() string { return e.Msg + ": " + fmt.Sprint(e.Err) }

func (e *UnavailableError) Unwrap() error { return e.Err }

// Unavailable reports a change that could not be made now, naming the field; cause stays
// in the panel's log.
func Unavailable(field string, cause error, format string, args ...any) error {
	return &UnavailableError{Field: field, Msg: fmt.Sprintf(format, args...), Err: cause}
}

type ForbiddenError struct{ Msg string }

func (e *ForbiddenError) Error() string { return e.Msg }

// Forbidden builds a ForbiddenError.
func Forbidden(format string, args ...any) error {
	return &ForbiddenError{Msg: fmt.Sprintf(format, args...)}
}

// NotFoundError names what was not found (HTTP 404).
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }

func (e *NotFoundError) Unwrap() error { return ErrNotFound }

// NotFound builds a NotFoundError for a kind of object.
func NotFound(what string) error { return &NotFoundError{What: what} }
