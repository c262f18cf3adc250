package adminkey_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sessiond/sessiond/internal/adminkey"
)

// A server opens the keys file, follows it, and asks it about the key each
// admin request presents.
func ExampleSet_Lookup() {
	dir, err := os.MkdirTemp("", "sessiond")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "admin-keys")

	// sessiond admin-key new app
	key, err := adminkey.New(path, "app")
	if err != nil {
		log.Fatal(err)
	}

	keys, err := adminkey.Open(path, nil)
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go keys.Watch(ctx) // later changes to the file take effect within a second

	name, ok := keys.Lookup(key)
	fmt.Printf("%q %v\n", name, ok)
	name, ok = keys.Lookup("sdk_not-a-key")
	fmt.Printf("%q %v\n", name, ok)
	// Output:
	// "app" true
	// "" false
}
