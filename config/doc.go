package config

import (
	"fmt"
	"reflect"
	"strings"
	"time"
)

// Reference writes the settings reference of a config struct as a Markdown
// table: key, default, meaning. It is made from the struct's yaml and doc
// tags and its default values, so README's copy is checked against the
// code (config_test.go) and cannot drift from it.
func Reference(defaults any) string {
	var b strings.Builder
	b.WriteString("| setting | default | meaning |\n|---|---|---|\n")
	reference(&b, "", reflect.ValueOf(defaults))
	return b.String()
}

// MilterReference and StationReference are the two daemons' tables.
func MilterReference() string  { return Reference(DefaultMilter()) }
func StationReference() string { return Reference(DefaultStation()) }

var durationType = reflect.TypeFor[time.Duration]()

func reference(b *strings.Builder, prefix string, v reflect.Value) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		key := prefix + name
		fv := v.Field(i)
		if d := f.Tag.Get("default"); d != "" {
			// A default the loader fills in (the zero value means off in code).
			fmt.Fprintf(b, "| `%s` | `%s` | %s |\n", key, d, f.Tag.Get("doc"))
			continue
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			reference(b, key+".", fv)
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			fmt.Fprintf(b, "| `%s` | %s | %s |\n", key, value(fv), f.Tag.Get("doc"))
			reference(b, key+"[].", reflect.New(f.Type.Elem()).Elem())
			continue
		}
		fmt.Fprintf(b, "| `%s` | %s | %s |\n", key, value(fv), f.Tag.Get("doc"))
	}
}

func value(v reflect.Value) string {
	switch {
	case v.Type() == durationType:
		return "`" + shortDuration(time.Duration(v.Int())) + "`"
	case v.Kind() == reflect.Slice:
		if v.Len() == 0 {
			return "`[]`"
		}
		var items []string
		for i := 0; i < v.Len(); i++ {
			items = append(items, fmt.Sprint(v.Index(i).Interface()))
		}
		return "`[" + strings.Join(items, ", ") + "]`"
	case v.Kind() == reflect.Map && v.Len() == 0:
		return "`{}`"
	case v.Kind() == reflect.String && v.String() == "":
		return "(empty)"
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return "`" + s.String() + "`"
	}
	return "`" + fmt.Sprint(v.Interface()) + "`"
}

// shortDuration writes 2m0s as 2m and 1h0m0s as 1h, as admins write them.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
