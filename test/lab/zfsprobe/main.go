// Command zfsprobe runs the read calls of github.com/mistifyio/go-zfs/v3 inside a storage
// lab VM and prints what they parsed as JSON, so the lab test can check that go-zfs
// understands the guest's real OpenZFS. Test tooling, not product code.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	zfs "github.com/mistifyio/go-zfs/v3"
)

type report struct {
	Pools       []*zfs.Zpool   `json:"pools"`
	Pool        *zfs.Zpool     `json:"pool"`
	Datasets    []*zfs.Dataset `json:"datasets"`
	Filesystems []*zfs.Dataset `json:"filesystems"`
	Volumes     []*zfs.Dataset `json:"volumes"`
	Snapshots   []*zfs.Dataset `json:"snapshots"`
	Dataset     *zfs.Dataset   `json:"dataset"`
	Children    []*zfs.Dataset `json:"children"`
	GUID        string         `json:"guid"`
}

func main() {
	pool := flag.String("pool", "tank", "pool to inspect")
	dataset := flag.String("dataset", "", "dataset for GetDataset, Children and GetProperty(guid)")
	fetch := flag.String("fetch", "", "instead: GET this URL and print the body (checks the guest reaches the host)")
	flag.Parse()
	if *fetch != "" {
		resp, err := http.Get(*fetch)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer resp.Body.Close()
		io.Copy(os.Stdout, resp.Body) //nolint:errcheck
		return
	}
	var r report
	var err error
	must := func(what string, e error) {
		if e != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", what, e)
			os.Exit(1)
		}
	}
	r.Pools, err = zfs.ListZpools()
	must("ListZpools", err)
	r.Pool, err = zfs.GetZpool(*pool)
	must("GetZpool", err)
	r.Datasets, err = zfs.Datasets(*pool)
	must("Datasets", err)
	r.Filesystems, err = zfs.Filesystems(*pool)
	must("Filesystems", err)
	r.Volumes, err = zfs.Volumes(*pool)
	must("Volumes", err)
	r.Snapshots, err = zfs.Snapshots(*pool)
	must("Snapshots", err)
	if *dataset != "" {
		r.Dataset, err = zfs.GetDataset(*dataset)
		must("GetDataset", err)
		r.Children, err = r.Dataset.Children(1)
		must("Children", err)
		r.GUID, err = r.Dataset.GetProperty("guid")
		must("GetProperty", err)
	}
	must("encode", json.NewEncoder(os.Stdout).Encode(r))
}
