// Package english holds the word forms of the messages that the API and
// the command line write.
package english

import "strconv"

// Plural renders n of noun: "1 device", "2 devices", "0 devices".
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}
