// Package models holds the panel's data: the GORM structs of the guide's hierarchy, their
// ownership scopes, the versioned migrations, and the validation and business rules that
// the REST API and the web dashboard share (one code path, so a page can never do what
// the API refuses).
package models
