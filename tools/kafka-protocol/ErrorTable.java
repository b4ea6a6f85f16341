// Prints errors.tsv (code, name, retriable, refresh_metadata) from the Errors
// enum of the kafka-clients jar on the class path. Run with Java 17:
//   java -cp 'kafka-clients-4.1.1.jar' tools/kafka-protocol/ErrorTable.java > tools/kafka-protocol/errors.tsv
// retriable: the error's exception is a RetriableException; refresh_metadata:
// it is an InvalidMetadataException (the client refreshes metadata first).
import org.apache.kafka.common.errors.InvalidMetadataException;
import org.apache.kafka.common.errors.RetriableException;
import org.apache.kafka.common.protocol.Errors;

import java.util.Arrays;
import java.util.Comparator;

public class ErrorTable {
    public static void main(String[] args) {
        System.out.println("code\tname\tretriable\trefresh_metadata");
        Errors[] all = Errors.values();
        Arrays.sort(all, Comparator.comparingInt(e -> e.code()));
        for (Errors e : all) {
            Throwable t = e.exception();
            System.out.println(e.code() + "\t" + e.name() + "\t" + (t instanceof RetriableException)
                + "\t" + (t instanceof InvalidMetadataException));
        }
    }
}
