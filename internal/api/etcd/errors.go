package etcd

import (
	"context"
	"errors"

	"ensemble/internal/apply"
	"ensemble/internal/mvcc"
	"ensemble/internal/server"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// toGRPCError maps an error from the layers below to the gRPC error etcd's
// clients expect. It matches with errors.Is, so wrapped errors map too; an
// error already carrying a gRPC status passes through.
func toGRPCError(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, mvcc.ErrCompacted):
		return rpctypes.ErrGRPCCompacted
	case errors.Is(err, mvcc.ErrFutureRev):
		return rpctypes.ErrGRPCFutureRev
	case errors.Is(err, apply.ErrKeyNotFound):
		return rpctypes.ErrGRPCKeyNotFound
	case errors.Is(err, apply.ErrLeaseNotFound):
		return rpctypes.ErrGRPCLeaseNotFound
	case errors.Is(err, apply.ErrReserved):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, server.ErrNoLeader):
		return rpctypes.ErrGRPCNoLeader
	case errors.Is(err, server.ErrTimeout):
		return rpctypes.ErrGRPCTimeout
	case errors.Is(err, server.ErrLeaderChanged):
		return rpctypes.ErrGRPCLeaderChanged
	case errors.Is(err, server.ErrStopped):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, server.ErrRequestTooLarge):
		return rpctypes.ErrGRPCRequestTooLarge
	case errors.Is(err, server.ErrMemberNotFound):
		return rpctypes.ErrGRPCMemberNotFound
	case errors.Is(err, server.ErrMemberExists):
		return rpctypes.ErrGRPCMemberExist
	case errors.Is(err, server.ErrPeerURLExists):
		return rpctypes.ErrGRPCPeerURLExist
	case errors.Is(err, server.ErrMemberBadURLs):
		return rpctypes.ErrGRPCMemberBadURLs
	case errors.Is(err, server.ErrMemberNotLearner):
		return rpctypes.ErrGRPCMemberNotLearner
	case errors.Is(err, server.ErrLearnerNotReady):
		return rpctypes.ErrGRPCLearnerNotReady
	case errors.Is(err, server.ErrNotEnoughStarted):
		return rpctypes.ErrGRPCMemberNotEnoughStarted
	case errors.Is(err, server.ErrNotSupportedForLearner):
		return rpctypes.ErrGRPCNotSupportedForLearner
	case errors.Is(err, server.ErrNotLeader):
		return rpctypes.ErrGRPCNotLeader
	case errors.Is(err, apply.ErrNoSpace):
		return rpctypes.ErrGRPCNoSpace
	case errors.Is(err, apply.ErrCorrupt):
		return rpctypes.ErrGRPCCorrupt
	case errors.Is(err, server.ErrBadLeaderTransferee):
		return rpctypes.ErrGRPCBadLeaderTransferee
	case errors.Is(err, server.ErrTimeoutLeaderTransfer):
		return errTimeoutLeaderTransfer
	case errors.Is(err, server.ErrRemoved):
		return rpctypes.ErrGRPCStopped
	case errors.Is(err, context.Canceled):
		return rpctypes.ErrGRPCCanceled
	case errors.Is(err, context.DeadlineExceeded):
		return rpctypes.ErrGRPCDeadlineExceeded
	}
	return status.Error(codes.Unknown, err.Error())
}
