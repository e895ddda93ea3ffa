"""A cohort of cases: found in a folder tree or a manifest (:mod:`.cases`), shared out among
shards (:mod:`.shards`), and the results tables that make a rerun skip what is done and that
prove which files a batch wrote (:mod:`.results`, :mod:`.ledger`); cases are read ahead while the previous one
is computed (:mod:`.readahead`)."""

from hrinet.core.io.atomic import file_sha256
from hrinet.core.cohort.cases import (Case, check_outputs, find_cases, folder_output, identity,
                                      read_manifest)
from hrinet.core.cohort.readahead import read_ahead
from hrinet.core.cohort.ledger import Ledger, input_stamp, is_done
from hrinet.core.cohort.results import (Result, is_results_table, merge_results, read_results,
                                        running_shards, write_results)
from hrinet.core.cohort.shards import (parse_shard, results_name, shard_from_environment,
                                       shard_of)

__all__ = ["Case", "Ledger", "Result", "check_outputs", "file_sha256", "find_cases",
           "folder_output",
           "identity", "input_stamp", "is_done", "is_results_table", "merge_results",
           "parse_shard", "read_ahead",
           "read_manifest", "read_results", "results_name", "running_shards",
           "shard_from_environment",
           "shard_of", "write_results"]
