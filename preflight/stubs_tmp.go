package preflight

import "context"

func checkPDBs(ctx context.Context, in *Input) ([]Finding, error)   { return nil, nil }
func checkSkew(ctx context.Context, in *Input) ([]Finding, error)   { return nil, nil }
func checkHealth(ctx context.Context, in *Input) ([]Finding, error) { return nil, nil }
func checkAccess(ctx context.Context, in *Input) ([]Finding, error) { return nil, nil }
