"""RESP facts shared by the sharded Redis target and the Redis follower (devamb.wire): the
command table (where each command's keys are) and inline commands as redis-server splits them.
Below both in the layers: it imports nothing of devamb's."""
