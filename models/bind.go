package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// MalformedError is a request body that is not a JSON object at all (HTTP 400).
type MalformedError struct{ Msg string }

func (e *MalformedError) Error() string { return e.Msg }

// normKey folds a key the way the guide's payloads need: case-insensitive, with
// underscores and dashes ignored, so "VolumeID", "volume_id" and "volumeId" are one key.
func normKey(k string) string {
	k = strings.ToLower(k)
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(k)
}

type bindField struct {
	name  string // canonical name, reported in errors
	index int
}

// fieldsOf maps every accepted spelling of an input struct's fields (the `field` tag:
// canonical name first, then aliases) to the field.
func fieldsOf(t reflect.Type) map[string]bindField {
	m := map[string]bindField{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("field")
		if tag == "" || tag == "-" {
			continue
		}
		names := strings.Split(tag, ",")
		for _, n := range names {
			m[normKey(n)] = bindField{name: names[0], index: i}
		}
	}
	return m
}

// DecodeJSON fills dst (a pointer to an input struct of pointer fields) from a JSON object.
// Unknown keys and wrong types are ValidationErrors naming the key; a body that is not
// a JSON object is a MalformedError. Numbers may be sent as strings ("vol_size": "42").
func DecodeJSON(body []byte, dst any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &MalformedError{Msg: "request body is empty: send a JSON object"}
	}
	var raw map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil || raw == nil {
		return &MalformedError{Msg: "request body is not a JSON object"}
	}
	if dec.More() {
		return &MalformedError{Msg: "request body has data after the JSON object"}
	}
	keys := slices.Sorted(maps.Keys(raw)) // errors name the same key whatever the order
	return bindValues(dst, func(yield func(key string, set func(reflect.Value, string) error) error) error {
		for _, k := range keys {
			v := raw[k]
			if err := yield(k, func(f reflect.Value, name string) error { return setJSON(f, name, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// DecodeForm fills dst from form values, with the same names and rules as DecodeJSON.
// Keys in skip (such as the CSRF token) are ignored.
func DecodeForm(values map[string][]string, dst any, skip ...string) error {
	return bindValues(dst, func(yield func(key string, set func(reflect.Value, string) error) error) error {
		keys := slices.Sorted(maps.Keys(values))
	keys:
		for _, k := range keys {
			vs := values[k]
			for _, s := range skip {
				if k == s {
					continue keys
				}
			}
			v := ""
			if len(vs) > 0 {
				v = vs[len(vs)-1]
			}
			if err := yield(k, func(f reflect.Value, name string) error { return setString(f, name, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}

func bindValues(dst any, each func(func(string, func(reflect.Value, string) error) error) error) error {
	rv := reflect.ValueOf(dst)
	if rv.Kind() != reflect.Pointer || rv.Elem().Kind() != reflect.Struct {
		return errors.New("bind: destination must be a pointer to a struct")
	}
	rv = rv.Elem()
	fields := fieldsOf(rv.Type())
	var firstErr error
	err := each(func(key string, set func(reflect.Value, string) error) error {
		f, ok := fields[normKey(key)]
		if !ok {
			return Invalid(key, "is not a known field")
		}
		fv := rv.Field(f.index)
		if !fv.IsNil() {
			return Invalid(key, "is given twice")
		}
		if err := set(fv, f.name); err != nil && firstErr == nil {
			firstErr = err
		}
		return nil
	})
	if err != nil {
		return err
	}
	return firstErr
}

// setJSON decodes one JSON value into a pointer field.
func setJSON(f reflect.Value, name string, v json.RawMessage) error {
	elem := f.Type().Elem()
	s := strings.TrimSpace(string(v))
	if s == "null" {
		// null clears an optional reference or value: the zero value is "unset".
		f.Set(reflect.New(elem))
		return nil
	}
	switch elem.Kind() {
	case reflect.String:
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return Invalid(name, "must be a string")
		}
		return setString(f, name, str)
	case reflect.Bool:
		var b bool
		if err := json.Unmarshal(v, &b); err == nil {
			f.Set(reflect.ValueOf(&b))
			return nil
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return Invalid(name, "must be true or false")
		}
		return setString(f, name, str)
	case reflect.Int, reflect.Int64, reflect.Uint:
		var n json.Number
		if err := json.Unmarshal(v, &n); err == nil {
			return setString(f, name, n.String())
		}
		var str string
		if err := json.Unmarshal(v, &str); err != nil {
			return Invalid(name, "must be a whole number")
		}
		return setString(f, name, str)
	default:
		p := reflect.New(elem)
		if err := json.Unmarshal(v, p.Interface()); err != nil {
			return Invalid(name, "has the wrong type: %s", describe(elem))
		}
		f.Set(p)
		return nil
	}
}

func describe(t reflect.Type) string {
	if t.Kind() == reflect.Slice {
		return "must be a list"
	}
	return "must be a " + t.Kind().String()
}

// setString converts a string (a form value, or a JSON string) into a pointer field.
func setString(f reflect.Value, name, s string) error {
	elem := f.Type().Elem()
	p := reflect.New(elem)
	switch elem.Kind() {
	case reflect.String:
		p.Elem().SetString(s)
	case reflect.Bool:
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "true", "1", "on", "yes":
			p.Elem().SetBool(true)
		case "false", "0", "off", "no", "":
		default:
			return Invalid(name, "must be true or false")
		}
	case reflect.Int, reflect.Int64:
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || (elem.Kind() == reflect.Int && (n > math.MaxInt32 || n < math.MinInt32)) {
			return Invalid(name, "must be a whole number")
		}
		p.Elem().SetInt(n)
	case reflect.Uint:
		s = strings.TrimSpace(s)
		if s == "" {
			break
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return Invalid(name, "must be an id (a positive whole number)")
		}
		p.Elem().SetUint(n)
	default:
		if err := json.Unmarshal([]byte(s), p.Interface()); err != nil {
			return Invalid(name, "has the wrong type: %s", describe(elem))
		}
	}
	f.Set(p)
	return nil
}

// Strp returns a pointer to s, for building inputs in code and tests.
func Strp(s string) *string { return &s }

// Uintp returns a pointer to n.
func Uintp(n uint) *uint { return &n }
