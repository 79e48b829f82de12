"""pycaffe's `caffe.proto` package: `caffe_pb2` holds Caffe's message classes."""
