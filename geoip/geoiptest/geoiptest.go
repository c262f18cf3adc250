// Package geoiptest writes small MaxMind DB (.mmdb) files for tests of code
// that uses package geoip.
package geoiptest

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

// Record is the location of one network, written in the shape of a GeoIP2
// City record (city.names, country.names, country.iso_code).
type Record struct {
	// Network is a CIDR such as "81.2.69.0/24" or "2a02:c7f::/32".
	Network string
	// City is the English city name; "" writes a Country-shaped record with
	// no city.
	City string
	// CityNames, when set, replaces {"en": City} as the city's names, for
	// records whose city has no English name.
	CityNames map[string]string
	// Country is the English country name.
	Country string
	// ISOCode is the country's ISO 3166-1 code (optional).
	ISOCode string
}

// Sample is what WriteSample writes. Lookups in it give:
//
//	81.2.69.142, ::ffff:81.2.69.142  "London, United Kingdom"  (IPv4 city)
//	102.89.1.1                       "Lagos, Nigeria"          (IPv4 city)
//	89.160.20.112                    "Sweden"                  (IPv4, country only)
//	175.16.199.1                     "China"                   (city with no English name)
//	2a02:c7f::1                      "Berlin, Germany"         (IPv6 city)
//	2001:218::1                      "Japan"                   (IPv6, country only)
//	1.1.1.1, 2606:4700::1111          ""                        (not in the file)
//
// It also holds records for 10.0.0.0/8, 192.168.0.0/16, 127.0.0.0/8,
// 169.254.0.0/16, fd00::/8 and fe80::/10, all "Reykjavik, Iceland", so tests
// can show that geoip.DB.Lookup still returns "" for private, loopback and
// link-local addresses when a file has data for them.
var Sample = []Record{
	{Network: "81.2.69.0/24", City: "London", Country: "United Kingdom", ISOCode: "GB"},
	{Network: "102.89.0.0/16", City: "Lagos", Country: "Nigeria", ISOCode: "NG"},
	{Network: "89.160.20.0/24", Country: "Sweden", ISOCode: "SE"},
	{Network: "175.16.199.0/24", CityNames: map[string]string{"zh-CN": "长春"}, Country: "China", ISOCode: "CN"},
	{Network: "2a02:c7f::/32", City: "Berlin", Country: "Germany", ISOCode: "DE"},
	{Network: "2001:218::/32", Country: "Japan", ISOCode: "JP"},
	{Network: "10.0.0.0/8", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
	{Network: "192.168.0.0/16", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
	{Network: "127.0.0.0/8", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
	{Network: "169.254.0.0/16", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
	{Network: "fd00::/8", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
	{Network: "fe80::/10", City: "Reykjavik", Country: "Iceland", ISOCode: "IS"},
}

// WriteSample writes Sample to a new file in t.TempDir and returns its path.
func WriteSample(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "GeoIP2-City-Sample.mmdb")
	Write(t, path, Sample)
	return path
}

// Write writes records to a GeoIP2-City-shaped .mmdb file at path, failing
// the test on any error.
func Write(t testing.TB, path string, records []Record) {
	t.Helper()
	if err := WriteFile(path, records); err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes records to a GeoIP2-City-shaped .mmdb file at path. It is
// Write for callers without a testing.TB, such as Example functions.
// Reserved networks (private, loopback, ...) are allowed, and later records
// replace earlier ones where they overlap.
func WriteFile(path string, records []Record) error {
	languages := []string{"en"}
	for _, rec := range records {
		for lang := range rec.CityNames {
			if !slices.Contains(languages, lang) {
				languages = append(languages, lang)
			}
		}
	}
	slices.Sort(languages)
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            "GeoIP2-City",
		Description:             map[string]string{"en": "sessiond test data"},
		Languages:               languages,
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		return fmt.Errorf("geoiptest: %w", err)
	}
	for _, rec := range records {
		_, network, err := net.ParseCIDR(rec.Network)
		if err != nil {
			return fmt.Errorf("geoiptest: record %q: %w", rec.Network, err)
		}
		if err := tree.Insert(network, rec.value()); err != nil {
			return fmt.Errorf("geoiptest: insert %s: %w", rec.Network, err)
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("geoiptest: %w", err)
	}
	if _, err := tree.WriteTo(f); err != nil {
		f.Close()
		return fmt.Errorf("geoiptest: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("geoiptest: write %s: %w", path, err)
	}
	return nil
}

func (rec Record) value() mmdbtype.Map {
	m := mmdbtype.Map{}
	cityNames := rec.CityNames
	if cityNames == nil && rec.City != "" {
		cityNames = map[string]string{"en": rec.City}
	}
	if len(cityNames) > 0 {
		m["city"] = mmdbtype.Map{"names": names(cityNames)}
	}
	if rec.Country != "" {
		country := mmdbtype.Map{"names": names(map[string]string{"en": rec.Country})}
		if rec.ISOCode != "" {
			country["iso_code"] = mmdbtype.String(rec.ISOCode)
		}
		m["country"] = country
	}
	return m
}

func names(n map[string]string) mmdbtype.Map {
	m := mmdbtype.Map{}
	for lang, name := range n {
		m[mmdbtype.String(lang)] = mmdbtype.String(name)
	}
	return m
}
