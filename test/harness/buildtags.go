package harness

// BuildTags are the tags every build of the clusterducks binary uses (the Taskfile's TAGS):
// they leave out parts of the Temporal server's dependencies it never runs, and one set of
// tags lets the tests, the lab and `go tool task dev` share one build cache.
const BuildTags = "disable_grpc_modules,release"
