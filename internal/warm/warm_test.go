package warm
import (
	_ "go.temporal.io/server/temporal"
	_ "go.temporal.io/server/temporaltest"
	_ "go.temporal.io/server/common/persistence/sql/sqlplugin/sqlite"
	_ "github.com/temporalio/ui-server/v2/server"
	_ "go.temporal.io/sdk/client"
	_ "github.com/gofiber/fiber/v2"
	_ "gorm.io/driver/postgres"
	_ "gorm.io/driver/sqlite"
	_ "modernc.org/sqlite"
	_ "github.com/go-gormigrate/gormigrate/v2"
	_ "github.com/mistifyio/go-zfs/v3"
	_ "github.com/wneessen/go-mail"
)
