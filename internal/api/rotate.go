package api

import (
	"errors"
	"net/http"

	"github.com/portcullis/portcullis/internal/resource"
	"github.com/portcullis/portcullis/internal/rotate"
)

// rotateAccount takes over account {target}/{name}: its key is replaced by
// a new gateway key and every other key leaves its authorized_keys (see
// package rotate). The answer is a rotate.Result; a rotation the target
// refused is 502 with the reason, and the old key stays.
func (a *api) rotateAccount(w http.ResponseWriter, r *http.Request) error {
	if a.rotator == nil {
		return clientError(http.StatusServiceUnavailable, "key rotation is not available on this gateway")
	}
	target, name := r.PathValue("target"), r.PathValue("name")
	if !resource.ValidName(target) || !resource.ValidTargetUser(name) {
		return clientError(http.StatusBadRequest, "%q is not an account (TARGET/NAME)", target+"/"+name)
	}
	res, err := a.rotator.Rotate(r.Context(), target, name, caller(r).actor())
	switch {
	case errors.Is(err, rotate.ErrNotFound):
		return clientError(http.StatusNotFound, "account %s/%s does not exist", target, name)
	case err != nil:
		// The cause is the target's (a refused login, a failed write):
		// the admin needs it to fix the target, and it holds no secret.
		return clientError(http.StatusBadGateway, "%v", err)
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
