package storage

import (
	"fmt"
	"strconv"
	"strings"
)

// The guide's layout on every server's pool. Dataset names are built here from ids only,
// never from names users type.

// LayoutFileSystems are the file systems bootstrap creates on a pool, parents first.
var layoutFileSystems = []string{
	"iscsi", "iscsi/devices", "iscsi/containers", "iscsi/ctemplates", "iscsi/groups", "iscsi/volumes",
	"vdisks", "erator",
}

// Layout returns the file systems of the guide's layout on pool, parents first.
func Layout(pool string) []string {
	out := make([]string, len(layoutFileSystems))
	for i, fs := range layoutFileSystems {
		out[i] = pool + "/" + fs
	}
	return out
}

// VolumeDataset is <pool>/iscsi/volumes/<id>.
func VolumeDataset(pool string, id uint) string { return fmt.Sprintf("%s/iscsi/volumes/%d", pool, id) }

// GroupDataset is <pool>/iscsi/groups/<id>.
func GroupDataset(pool string, id uint) string { return fmt.Sprintf("%s/iscsi/groups/%d", pool, id) }

// DeviceDataset is <pool>/iscsi/devices/<id>.
func DeviceDataset(pool string, id uint) string { return fmt.Sprintf("%s/iscsi/devices/%d", pool, id) }

// CTemplateDataset is <pool>/iscsi/ctemplates/<id>: a container root file system template.
func CTemplateDataset(pool string, id uint) string {
	return fmt.Sprintf("%s/iscsi/ctemplates/%d", pool, id)
}

// ContainerDataset is <pool>/iscsi/containers/<id>: a container's clone of a ctemplate version.
func ContainerDataset(pool string, id uint) string {
	return fmt.Sprintf("%s/iscsi/containers/%d", pool, id)
}

// VDiskDataset is <pool>/vdisks/<id>: a device's persistent data disk.
func VDiskDataset(pool string, id uint) string { return fmt.Sprintf("%s/vdisks/%d", pool, id) }

// VersionSnapshot is the snapshot name of group version n: v<n>.
func VersionSnapshot(n int) string { return "v" + strconv.Itoa(n) }

// GroupOriginSnapshot is the snapshot of a volume that group id is cloned from.
func GroupOriginSnapshot(groupID uint) string { return fmt.Sprintf("group-%d", groupID) }

// Erator is <pool>/erator, the trash.
func Erator(pool string) string { return pool + "/erator" }

// EratorDataset is <pool>/erator/<kind>-<id>-<unix>: where an object goes when deleted.
func EratorDataset(pool, kind string, id uint, unix int64) string {
	return fmt.Sprintf("%s/erator/%s-%d-%d", pool, kind, id, unix)
}

// EratorEntry is one dataset in the erator, decoded from its name.
type EratorEntry struct {
	Name   string `json:"name"` // full dataset name
	Kind   string `json:"kind"` // volume, group, device, ...
	ID     uint   `json:"id"`
	Unix   int64  `json:"unix"` // when it was deleted
	Used   uint64 `json:"used"`
	Origin string `json:"origin,omitempty"`
}

// ParseEratorName decodes <pool>/erator/<kind>-<id>-<unix>; ok is false for other names.
func ParseEratorName(name string) (e EratorEntry, ok bool) {
	i := strings.LastIndex(name, "/erator/")
	if i < 0 {
		return e, false
	}
	base := name[i+len("/erator/"):]
	parts := strings.Split(base, "-")
	if len(parts) != 3 || parts[0] == "" || strings.Contains(base, "/") || strings.Contains(base, "@") {
		return e, false
	}
	id, err1 := strconv.ParseUint(parts[1], 10, 32)
	unix, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil {
		return e, false
	}
	return EratorEntry{Name: name, Kind: parts[0], ID: uint(id), Unix: unix}, true
}
