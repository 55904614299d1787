package etcd

import (
	"context"
	"errors"
	"io"

	"ensemble/internal/types"
	"ensemble/internal/watch"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/metadata"
)

// WatchMember is what the Watch service needs from a member.
type WatchMember interface {
	memberInfo
	Leader() types.MemberID
	NewWatchStream() *watch.Stream
}

type watchServer struct {
	pb.UnimplementedWatchServer
	m WatchMember
	h headerer
}

// Watch serves one bidirectional watch stream: requests are read on their
// own goroutine while responses are sent on this one, in order.
func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	if md, ok := metadata.FromIncomingContext(stream.Context()); ok {
		// A client that asked for a leader (clientv3.WithRequireLeader) is
		// refused by a member that has none, as by etcd.
		if v := md.Get(rpctypes.MetadataRequireLeaderKey); len(v) > 0 && v[0] == rpctypes.MetadataHasLeader && s.m.Leader() == 0 {
			return rpctypes.ErrGRPCNoLeader
		}
	}
	st := s.m.NewWatchStream()
	defer st.Close()
	recvErr := make(chan error, 1)
	go func() {
		err := s.recvLoop(stream, st)
		if err != nil {
			recvErr <- err
			st.Close()
		}
	}()
	err := st.Run(stream.Context(), func(r *pb.WatchResponse) error {
		s.h.fill(r.Header)
		return stream.Send(r)
	})
	select {
	case rerr := <-recvErr:
		err = rerr
	default:
	}
	if errors.Is(err, context.Canceled) || errors.Is(stream.Context().Err(), context.Canceled) {
		return rpctypes.ErrGRPCWatchCanceled
	}
	if errors.Is(err, watch.ErrClosed) {
		return rpctypes.ErrGRPCStopped
	}
	return err
}

// recvLoop applies the client's requests to st. A client that closes its
// sending side (io.EOF) keeps receiving, as with etcd.
func (s *watchServer) recvLoop(stream pb.Watch_WatchServer, st *watch.Stream) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch u := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest != nil {
				s.create(st, u.CreateRequest)
			}
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest != nil {
				// etcd answers nothing for an unknown id.
				_ = st.Cancel(u.CancelRequest.WatchId)
			}
		case *pb.WatchRequest_ProgressRequest:
			if u.ProgressRequest != nil {
				st.RequestProgress()
			}
		}
	}
}

// create turns etcd's create request into a watch, with etcd's conventions
// for keys and its refusals.
func (s *watchServer) create(st *watch.Stream, c *pb.WatchCreateRequest) {
	if c.StartRevision < 0 {
		st.Reject(rpctypes.ErrCompacted.Error())
		return
	}
	key := c.Key
	if len(key) == 0 {
		// \x00 is the smallest key.
		key = []byte{0}
	}
	var end []byte
	switch {
	case len(c.RangeEnd) == 0:
	case len(c.RangeEnd) == 1 && c.RangeEnd[0] == 0:
		end = []byte{0} // every key >= key
	default:
		end = c.RangeEnd
	}
	r := watch.CreateRequest{
		Key:            key,
		End:            end,
		StartRevision:  c.StartRevision,
		WatchID:        c.WatchId,
		PrevKV:         c.PrevKv,
		ProgressNotify: c.ProgressNotify,
		Fragment:       c.Fragment,
	}
	for _, f := range c.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			r.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			r.NoDelete = true
		}
	}
	if _, err := st.Create(r); err != nil {
		st.Reject(watchCancelReason(err))
	}
}

// watchCancelReason is the cancel_reason etcd gives for a refused create
// request; clients show it, so it is etcd's text.
func watchCancelReason(err error) string {
	switch {
	case errors.Is(err, watch.ErrDuplicateID):
		return "mvcc: duplicate watch ID provided on the WatchStream"
	case errors.Is(err, watch.ErrEmptyRange), errors.Is(err, watch.ErrClosed):
		return "mvcc: watcher range is empty"
	}
	return err.Error()
}
