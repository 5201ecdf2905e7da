package models

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
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
// Unknown keys, wrong types and a key given twice (in any spelling, also inside nested
// objects) are ValidationErrors naming the field; a body that is not a JSON object is a
// MalformedError. Numbers may be sent as strings ("vol_size": "42").
func DecodeJSON(body []byte, dst any) error {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return &MalformedError{Msg: "request body is empty: send a JSON object"}
	}
	if !utf8.Valid(body) {
		return &MalformedError{Msg: "request body is not valid UTF-8"}
	}
	members, err := objectMembers(body)
	if err != nil {
		return err
	}
	// Sorted (stably, so a repeated key keeps its order): errors name the same key
	// whatever the order of the body.
	slices.SortStableFunc(members, func(a, b member) int { return strings.Compare(a.key, b.key) })
	return bindValues(dst, func(yield func(key string, set func(reflect.Value, string) error) error) error {
		for _, m := range members {
			if err := yield(m.key, func(f reflect.Value, name string) error { return setJSON(f, name, m.value) }); err != nil {
				return err
			}
		}
		return nil
	})
}

// member is one key of a JSON object with its value, in the order of the body.
type member struct {
	key   string
	value json.RawMessage
}

// objectMembers splits a JSON object into its members, keeping every one: decoding into a
// map would keep only the last of a repeated key.
func objectMembers(body []byte) ([]member, error) {
	notObject := &MalformedError{Msg: "request body is not a JSON object"}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, notObject
	}
	var ms []member
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			return nil, notObject
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, notObject
		}
		ms = append(ms, member{key, v})
	}
	if _, err := dec.Token(); err != nil {
		return nil, notObject
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, &MalformedError{Msg: "request body has data after the JSON object"}
	}
	return ms, nil
}

// repeatedKey returns a key that one of the objects inside a JSON value (at any depth)
// has twice, in any spelling normKey folds together.
func repeatedKey(v json.RawMessage) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(v))
	// Each open object's keys; arrays get nil so that keys are only read in objects.
	var stack []map[string]bool
	expectKey := false
	for {
		tok, err := dec.Token()
		if err != nil {
			return "", false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, map[string]bool{})
				expectKey = true
				continue
			case '[':
				stack = append(stack, nil)
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if expectKey {
				k := normKey(t)
				if stack[len(stack)-1][k] {
					return t, true
				}
				stack[len(stack)-1][k] = true
				expectKey = false
				continue
			}
		}
		// After a value, the next token is a key if we are directly inside an object.
		expectKey = len(stack) > 0 && stack[len(stack)-1] != nil
	}
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
			if err := yield(k, func(f reflect.Value, name string) error {
				switch {
				case len(vs) == 0:
					return setString(f, name, "")
				case len(vs) == 1:
				// A checkbox comes after its hidden "false" (so that unchecked is sent too).
				case len(vs) == 2 && vs[0] == "false" && f.Type().Elem().Kind() == reflect.Bool:
				default:
					return Invalid(name, "is given twice")
				}
				return setString(f, name, vs[len(vs)-1])
			}); err != nil {
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
			return Invalid(f.name, "is given twice (keys match whatever their case, and _ and - are ignored)")
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
		if k, ok := repeatedKey(v); ok {
			return Invalid(name, "has the key %q twice in one object", k)
		}
		p := reflect.New(elem)
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.DisallowUnknownFields()
		if err := dec.Decode(p.Interface()); err != nil {
			if k, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
				return Invalid(name, "has an unknown key %s", k)
			}
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
		if !utf8.ValidString(s) {
			return Invalid(name, "is not valid UTF-8")
		}
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
