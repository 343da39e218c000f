// fanin/fanin.h: the whole public API.
#pragma once

#include "fanin/allocator.h"
#include "fanin/bert.h"
#include "fanin/device.h"
#include "fanin/engine.h"
#include "fanin/error.h"
#include "fanin/event.h"
#include "fanin/graph.h"
#include "fanin/host_buffer.h"
#include "fanin/model.h"
#include "fanin/ops.h"
#include "fanin/sentence_encoder.h"
#include "fanin/stream.h"
#include "fanin/tensor.h"
