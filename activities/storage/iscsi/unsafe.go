package iscsi

import "unsafe"

// uintptrOf passes a pointer to an ioctl argument.
func uintptrOf[T any](p *T) uintptr { return uintptr(unsafe.Pointer(p)) }
