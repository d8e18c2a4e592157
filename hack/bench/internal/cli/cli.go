// Package cli holds what the benchmark commands share for their flags.
package cli

import "strings"

// List splits a comma-separated flag value, dropping blanks: "a, b,," is [a b].
func List(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}
