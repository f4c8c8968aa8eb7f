#include <gtest/gtest.h>

#include <hiredis/hiredis.h>
#include <stdexcept>
#include <string>

#include "spillway/test_support/redis.hpp"

namespace spillway::test_support {
namespace {

TEST(Redis, StartsAndAnswersSetAndGet) {
  auto& redis = Redis::shared();
  EXPECT_TRUE(redis.running());
  EXPECT_EQ(redis.host(), "127.0.0.1");
  EXPECT_EQ(redis.cli({"SET", "support:k", "hello world"}), "OK");
  EXPECT_EQ(redis.cli({"GET", "support:k"}), "hello world");
  EXPECT_EQ(redis.cli({"GET", "support:missing"}), "(nil)");
  EXPECT_EQ(redis.cli({"DEL", "support:list"}), "0");
  EXPECT_EQ(redis.cli({"RPUSH", "support:list", "a", "b"}), "2");
  EXPECT_EQ(redis.cli({"LRANGE", "support:list", "0", "-1"}), "a\nb");
  EXPECT_THROW(redis.cli({"NOSUCHCOMMAND"}), std::runtime_error);
  // Started without persistence: nothing written to disk behind a test's back.
  EXPECT_EQ(redis.cli({"CONFIG", "GET", "save"}), "save\n");
  EXPECT_EQ(redis.cli({"CONFIG", "GET", "appendonly"}), "appendonly\nno");
}

TEST(Redis, StopAndStartKeepThePort) {
  auto& redis = Redis::shared();
  const int port = redis.port();
  redis.stop();
  EXPECT_FALSE(redis.running());
  EXPECT_THROW(redis.cli({"PING"}), std::runtime_error);
  redis.start();
  EXPECT_TRUE(redis.running());
  EXPECT_EQ(redis.port(), port);
  EXPECT_EQ(redis.cli({"PING"}), "PONG");
}

TEST(Redis, KillThenStartComesBackEmptyOnTheSamePort) {
  auto& redis = Redis::shared();
  const int port = redis.port();
  redis.cli({"SET", "support:gone", "1"});
  redis.kill();
  EXPECT_FALSE(redis.running());
  EXPECT_THROW(redis.cli({"PING"}), std::runtime_error);
  redis.start();
  EXPECT_EQ(redis.port(), port);
  EXPECT_EQ(redis.cli({"GET", "support:gone"}), "(nil)");  // no persistence: a crash loses all
}

TEST(Redis, PasswordProtectedInstanceRefusesUnauthenticatedCommands) {
  Redis locked(RedisOptions{.password = "s3cret"});
  EXPECT_NE(locked.port(), Redis::shared().port());
  EXPECT_EQ(locked.cli({"SET", "k", "v"}), "OK");  // cli() authenticates

  redisContext* ctx = redisConnect(locked.host().c_str(), locked.port());
  ASSERT_TRUE(ctx != nullptr && ctx->err == 0);
  auto* reply = static_cast<redisReply*>(redisCommand(ctx, "GET k"));
  ASSERT_NE(reply, nullptr);
  EXPECT_EQ(reply->type, REDIS_REPLY_ERROR);
  EXPECT_NE(std::string(reply->str, reply->len).find("NOAUTH"), std::string::npos) << reply->str;
  freeReplyObject(reply);
  redisFree(ctx);
}

}  // namespace
}  // namespace spillway::test_support
