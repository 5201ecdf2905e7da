package api

import (
	"errors"
	"log/slog"
	"strconv"

	"github.com/clusterducks/clusterducks/activities/storage/wire"
	"github.com/clusterducks/clusterducks/models"
	"github.com/gofiber/fiber/v2"
)

// ErrorBody is every error the API sends: a message and, when one is to blame, the field.
type ErrorBody = wire.ErrorBody

// Status maps an error from the models or Fiber to its HTTP status and body. Errors it
// does not know are 500 with a generic message; their text (SQL, stderr) never leaves the panel.
func Status(err error) (int, ErrorBody) {
	var (
		malformed   *models.MalformedError
		invalid     *models.ValidationError
		nfField     *models.NotFoundFieldError
		nf          *models.NotFoundError
		conflict    *models.ConflictError
		forbidden   *models.ForbiddenError
		unavailable *models.UnavailableError
		limited     *models.RateLimitedError
		fe          *fiber.Error
	)
	switch {
	case errors.As(err, &malformed):
		return fiber.StatusBadRequest, ErrorBody{Error: malformed.Msg}
	case errors.As(err, &invalid):
		return fiber.StatusUnprocessableEntity, ErrorBody{Error: invalid.Field + " " + invalid.Msg, Field: invalid.Field}
	case errors.As(err, &nfField):
		return fiber.StatusNotFound, ErrorBody{Error: nfField.Error(), Field: nfField.Field}
	case errors.As(err, &nf):
		return fiber.StatusNotFound, ErrorBody{Error: nf.Error()}
	case errors.Is(err, models.ErrNotFound):
		return fiber.StatusNotFound, ErrorBody{Error: "not found"}
	case errors.As(err, &conflict):
		return fiber.StatusConflict, ErrorBody{Error: conflict.Msg, Field: conflict.Field}
	case errors.As(err, &unavailable):
		slog.Warn("service unavailable", "field", unavailable.Field, "err", unavailable.Err)
		return fiber.StatusServiceUnavailable, ErrorBody{Error: unavailable.Msg, Field: unavailable.Field}
	case errors.As(err, &forbidden):
		return fiber.StatusForbidden, ErrorBody{Error: forbidden.Msg}
	case errors.As(err, &limited):
		return fiber.StatusTooManyRequests, ErrorBody{Error: limited.Error()}
	case errors.Is(err, models.ErrBadCredentials):
		return fiber.StatusUnauthorized, ErrorBody{Error: `missing or invalid credentials: send Authorization: Token token="..."`}
	case models.IsDuplicate(err):
		return fiber.StatusConflict, ErrorBody{Error: "an object with these values already exists"}
	case errors.As(err, &fe):
		return fe.Code, ErrorBody{Error: fe.Message}
	}
	slog.Error("internal error", "err", err)
	return fiber.StatusInternalServerError, ErrorBody{Error: "internal error; the panel's log has the details"}
}

// ErrorHandler is Fiber's error handler for the API: JSON bodies with the right status.
func ErrorHandler(c *fiber.Ctx, err error) error {
	code, body := Status(err)
	if code == fiber.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Token realm="clusterducks"`)
	}
	var limited *models.RateLimitedError
	if errors.As(err, &limited) {
		c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(limited.RetryAfter.Seconds()+0.999)))
	}
	return c.Status(code).JSON(body)
}
